#!/usr/bin/env bash
# Benchmark: ThingsBoard ts_kv → narrow telemetry table, tsmigrate vs the psql binary COPY pipe.
#
#   bench/thingsboard.sh [ROWS]          (default 20000000, like ../shared/reference/peers.md)
#
# Starts a throwaway PostgreSQL cluster (durable settings, same for both tools), generates a
# ThingsBoard-shaped database (7 devices x 27 keys: 20 double, 4 long, 2 bool, 1 string; three
# monthly partitions plus the default partition), then alternates ROUNDS (default 2) runs of
#   pipe: psql COPY (SELECT … JOIN dictionary) TO STDOUT binary | psql COPY … FROM STDIN binary
#   tsmigrate run (the same mapping, plan in the work dir)
# into two identical target tables without indexes, and prints rows/s of each, the ratio and
# tsmigrate's peak RSS. After each round, times `tsmigrate verify` of the migrated table (both
# sides read in full and compared per bucket digest) and prints verify time / migration time.
# Finally checks both targets hold exactly the same rows (EXCEPT ALL).
# Environment: ROUNDS, JOBS (tsmigrate --jobs), KEEP=1 keeps the cluster, VERIFY=0 skips the check.
set -euo pipefail

ROWS=${1:-20000000}
ROUNDS=${ROUNDS:-2}
VERIFY=${VERIFY:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

echo "== building tsmigrate (release)"
cargo build --release -q
BIN="$ROOT/target/release/tsmigrate"

# shellcheck source=../scripts/pg-throwaway.sh
. "$ROOT/scripts/pg-throwaway.sh"
pg_throwaway_start shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min
trap pg_throwaway_stop EXIT
WORK=$PG_WORK
PORT=$PG_PORT
"${PSQL[@]}" -d postgres -c "CREATE DATABASE tb" -c "CREATE DATABASE iiot"

echo "== generating a ThingsBoard database of ~$ROWS ts_kv rows"
t0=$(date +%s.%N)
"${PSQL[@]}" -d tb -v rows="$ROWS" -f "$ROOT/examples/data/thingsboard-generate.sql"
N=$("${PSQL[@]}" -d tb -At -c "SELECT count(*) FROM ts_kv")
printf '   %s rows in %.0f s\n' "$N" "$(echo "$(date +%s.%N) - $t0" | bc)"

TABLE_DDL='(device_id uuid, "timestamp" timestamptz, key text, value double precision, text_value text, metadata jsonb)'
"${PSQL[@]}" -d iiot -c "CREATE TABLE telemetry_pipe $TABLE_DDL" -c "CREATE TABLE telemetry_tsm $TABLE_DDL"

SELECT_SQL="SELECT t.entity_id, timestamptz 'epoch' + t.ts * interval '1 millisecond', d.key,
  COALESCE(t.dbl_v, CASE WHEN t.long_v BETWEEN -9007199254740992 AND 9007199254740992 THEN t.long_v::float8 END, t.bool_v::int::float8),
  COALESCE(t.str_v, t.json_v::text, CASE WHEN t.long_v NOT BETWEEN -9007199254740992 AND 9007199254740992 THEN t.long_v::text END),
  '{\"migrated_from\":\"thingsboard\"}'::jsonb
  FROM ts_kv t JOIN ts_kv_dictionary d ON d.key_id = t.key"

cat > "$WORK/plan.toml" <<TOML
[source]
kind = "thingsboard"
url = "postgres://postgres@127.0.0.1:$PORT/tb"
[target]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:$PORT/iiot"
[[streams]]
name = "telemetry"
table = "telemetry_tsm"
columns = [
  { name = "device_id", expr = "entity_id" },
  { name = "timestamp", expr = "from_epoch_ms(ts)" },
  { name = "key", expr = "key" },
  { name = "value", expr = "COALESCE(dbl_v, CASE WHEN long_v BETWEEN -9007199254740992 AND 9007199254740992 THEN long_v::float8 END, bool_v::int::float8)" },
  { name = "text_value", expr = "COALESCE(str_v, json_v::text, CASE WHEN long_v NOT BETWEEN -9007199254740992 AND 9007199254740992 THEN long_v::text END)" },
  { name = "metadata", expr = "'{\"migrated_from\":\"thingsboard\"}'::jsonb" },
]
TOML

now() { date +%s.%N; }
pipe_times=(); tsm_times=(); rss=(); verify_times=(); verify_rss=()
for r in $(seq 1 "$ROUNDS"); do
  "${PSQL[@]}" -d iiot -c "TRUNCATE telemetry_pipe, telemetry_tsm" -c CHECKPOINT
  a=$(now)
  "${PSQL[@]}" -d tb -c "COPY ($SELECT_SQL) TO STDOUT (FORMAT binary)" \
    | "${PSQL[@]}" -d iiot -c "COPY telemetry_pipe FROM STDIN (FORMAT binary)"
  b=$(now); pipe_times+=("$(echo "$b - $a" | bc)")
  "${PSQL[@]}" -d iiot -c "TRUNCATE telemetry_tsm" -c CHECKPOINT
  a=$(now)
  # --restart: the table was truncated, so the ledger's record of the last round is stale.
  /usr/bin/time -v -o "$WORK/time.txt" "$BIN" run "$WORK/plan.toml" --restart --progress off ${JOBS:+--jobs $JOBS} \
    --rejects-dir "$WORK" --report "$WORK/report.json" >"$WORK/tsm.out"
  b=$(now); tsm_times+=("$(echo "$b - $a" | bc)")
  rss+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")")
  printf '   round %d: pipe %.1f s, tsmigrate %.1f s (peak RSS %d MiB)\n' "$r" "${pipe_times[-1]}" "${tsm_times[-1]}" "$(( ${rss[-1]} / 1024 ))"
  a=$(now)
  /usr/bin/time -v -o "$WORK/vtime.txt" "$BIN" verify "$WORK/plan.toml" --report "$WORK/verify.json" >"$WORK/verify.out" \
    || { echo "verify did not find the tables equal:"; cat "$WORK/verify.out"; exit 1; }
  b=$(now); verify_times+=("$(echo "$b - $a" | bc)")
  verify_rss+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/vtime.txt")")
  printf '   round %d: tsmigrate verify %.1f s (%.2fx the migration; peak RSS %d MiB): %s\n' "$r" "${verify_times[-1]}" \
    "$(echo "${verify_times[-1]} / ${tsm_times[-1]}" | bc -l)" "$(( ${verify_rss[-1]} / 1024 ))" "$(head -1 "$WORK/verify.out")"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
P=$(median "${pipe_times[@]}"); T=$(median "${tsm_times[@]}")
R=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
echo
echo "== result ($N rows, median of $ROUNDS rounds, $(nproc) cores, PostgreSQL $("${PSQL[@]}" -d tb -At -c 'SHOW server_version'))"
printf '%-34s %8.1f s  %10.0f rows/s\n' "psql binary COPY pipe" "$P" "$(echo "$N / $P" | bc -l)"
printf '%-34s %8.1f s  %10.0f rows/s\n' "tsmigrate run" "$T" "$(echo "$N / $T" | bc -l)"
printf 'tsmigrate / pipe throughput ratio: %.2fx\n' "$(echo "$P / $T" | bc -l)"
printf 'tsmigrate peak RSS: %d MiB\n' "$(( R / 1024 ))"
V=$(median "${verify_times[@]}")
printf '%-34s %8.1f s  %10.0f rows/s per side\n' "tsmigrate verify" "$V" "$(echo "$N / $V" | bc -l)"
printf 'verify time / migration time: %.2fx (goal: <= 0.5x)\n' "$(echo "$V / $T" | bc -l)"

if [ "$VERIFY" = 1 ]; then
  echo "== checking both targets hold the same rows"
  "${PSQL[@]}" -d iiot -At -c "SELECT 'rows: pipe ' || (SELECT count(*) FROM telemetry_pipe) || ', tsmigrate ' || (SELECT count(*) FROM telemetry_tsm) ||
     ', only in pipe ' || (SELECT count(*) FROM (SELECT * FROM telemetry_pipe EXCEPT ALL SELECT * FROM telemetry_tsm) x) ||
     ', only in tsmigrate ' || (SELECT count(*) FROM (SELECT * FROM telemetry_tsm EXCEPT ALL SELECT * FROM telemetry_pipe) y)"
fi
