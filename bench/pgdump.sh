#!/usr/bin/env bash
# Benchmark: a ThingsBoard backup (pg_dump -Fc, gzip) → narrow telemetry table in PostgreSQL.
#
#   bench/pgdump.sh [ROWS]          (default 20000000)
#
# Starts a throwaway PostgreSQL cluster (durable settings), generates a ThingsBoard database
# (7 devices x 27 keys, three monthly ts_kv partitions plus the default one, primary key),
# dumps it with `pg_dump -Fc` (default gzip compression), drops nothing, then per round:
#   restore:   createdb + pg_restore -j RESTORE_JOBS (default 2) of the dump   — what teams do today
#   + migrate: tsmigrate run from the restored database (the foundation migration)
#   dump:      tsmigrate run with [source] dump = the backup, straight into the target
# and prints the times, the ratios and tsmigrate's peak RSS; finally checks both targets hold
# exactly the same rows (EXCEPT ALL both ways).
# Environment: ROUNDS (default 1), RESTORE_JOBS, JOBS (tsmigrate --jobs), KEEP=1 keeps the cluster.
set -euo pipefail

ROWS=${1:-20000000}
ROUNDS=${ROUNDS:-1}
RESTORE_JOBS=${RESTORE_JOBS:-2}
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
"${PSQL[@]}" -d tb -v rows="$ROWS" -f "$ROOT/examples/data/thingsboard-generate.sql" >/dev/null
N=$("${PSQL[@]}" -d tb -At -c "SELECT count(*) FROM ts_kv")
now() { date +%s.%N; }
a=$(now)
"$PG_BIN/pg_dump" -Fc -h 127.0.0.1 -p "$PORT" -U postgres -f "$WORK/tb.dump" tb
b=$(now)
printf '   %s rows; pg_dump -Fc: %.1f s, %s\n' "$N" "$(echo "$b - $a" | bc)" "$(du -h "$WORK/tb.dump" | cut -f1)"

TABLE_DDL='(device_id uuid, "timestamp" timestamptz, key text, value double precision, text_value text, metadata jsonb)'
plan() { # $1 = source lines, $2 = target table
  cat <<TOML
[source]
kind = "thingsboard"
$1
[target]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:$PORT/iiot"
[[streams]]
name = "telemetry"
table = "$2"
columns = [
  { name = "device_id", expr = "entity_id" },
  { name = "timestamp", expr = "from_epoch_ms(ts)" },
  { name = "key", expr = "key" },
  { name = "value", expr = "COALESCE(dbl_v, CASE WHEN long_v BETWEEN -9007199254740992 AND 9007199254740992 THEN long_v::float8 END, bool_v::int::float8)" },
  { name = "text_value", expr = "COALESCE(str_v, json_v::text, CASE WHEN long_v NOT BETWEEN -9007199254740992 AND 9007199254740992 THEN long_v::text END)" },
  { name = "metadata", expr = "'{\"migrated_from\":\"thingsboard\"}'::jsonb" },
]
TOML
}
plan "url = \"postgres://postgres@127.0.0.1:$PORT/restored\"" telemetry_restored >"$WORK/restored.toml"
plan "dump = \"$WORK/tb.dump\"" telemetry_dump >"$WORK/dump.toml"
"${PSQL[@]}" -d iiot -c "CREATE TABLE telemetry_restored $TABLE_DDL" -c "CREATE TABLE telemetry_dump $TABLE_DDL"

restore_t=(); migrate_t=(); dump_t=(); rss=()
for r in $(seq 1 "$ROUNDS"); do
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS restored" -c CHECKPOINT
  "${PSQL[@]}" -d iiot -c "TRUNCATE telemetry_restored, telemetry_dump" -c CHECKPOINT
  a=$(now)
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE restored"
  "$PG_BIN/pg_restore" -j "$RESTORE_JOBS" -h 127.0.0.1 -p "$PORT" -U postgres -d restored "$WORK/tb.dump"
  b=$(now); restore_t+=("$(echo "$b - $a" | bc)")
  a=$(now)
  "$BIN" run "$WORK/restored.toml" --restart --progress off ${JOBS:+--jobs $JOBS} --rejects-dir "$WORK" >"$WORK/restored.out"
  b=$(now); migrate_t+=("$(echo "$b - $a" | bc)")
  "${PSQL[@]}" -d iiot -c CHECKPOINT
  a=$(now)
  /usr/bin/time -v -o "$WORK/time.txt" "$BIN" run "$WORK/dump.toml" --restart --progress off ${JOBS:+--jobs $JOBS} \
    --rejects-dir "$WORK" >"$WORK/dump.out"
  b=$(now); dump_t+=("$(echo "$b - $a" | bc)")
  rss+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")")
  printf '   round %d: pg_restore %.1f s + migrate %.1f s = %.1f s; from the dump %.1f s (peak RSS %d MiB)\n' "$r" \
    "${restore_t[-1]}" "${migrate_t[-1]}" "$(echo "${restore_t[-1]} + ${migrate_t[-1]}" | bc)" "${dump_t[-1]}" "$(( ${rss[-1]} / 1024 ))"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
R=$(median "${restore_t[@]}"); M=$(median "${migrate_t[@]}"); D=$(median "${dump_t[@]}")
echo
echo "== result ($N rows, $(du -h "$WORK/tb.dump" | cut -f1) dump, median of $ROUNDS round(s), $(nproc) cores, PostgreSQL $("${PSQL[@]}" -d tb -At -c 'SHOW server_version'))"
printf '%-44s %8.1f s\n' "pg_restore -j $RESTORE_JOBS" "$R"
printf '%-44s %8.1f s\n' "pg_restore + tsmigrate run (restored db)" "$(echo "$R + $M" | bc)"
printf '%-44s %8.1f s  %10.0f rows/s\n' "tsmigrate run (dump = backup)" "$D" "$(echo "$N / $D" | bc -l)"
printf 'from the dump vs pg_restore alone: %.2fx faster (goal: > 1)\n' "$(echo "$R / $D" | bc -l)"
printf 'from the dump vs pg_restore + migration: %.2fx faster\n' "$(echo "($R + $M) / $D" | bc -l)"
printf 'tsmigrate peak RSS: %d MiB\n' "$(printf '%s\n' "${rss[@]}" | sort -n | tail -1 | awk '{print int($1/1024)}')"
echo "== checking both targets hold the same rows"
"${PSQL[@]}" -d iiot -At -c "SELECT 'rows: via restore ' || (SELECT count(*) FROM telemetry_restored) || ', from the dump ' || (SELECT count(*) FROM telemetry_dump) ||
   ', only via restore ' || (SELECT count(*) FROM (SELECT * FROM telemetry_restored EXCEPT ALL SELECT * FROM telemetry_dump) x) ||
   ', only from the dump ' || (SELECT count(*) FROM (SELECT * FROM telemetry_dump EXCEPT ALL SELECT * FROM telemetry_restored) y)"
