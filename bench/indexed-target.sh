#!/usr/bin/env bash
# Benchmark: a target table with a primary key. ThingsBoard ts_kv → narrow telemetry keyed by
# (device_id, key, timestamp), three ways, in one run on one throwaway cluster:
#
#   pipe into the indexed table:  psql COPY (SELECT …) TO STDOUT binary | psql COPY … FROM STDIN
#                                 into a table that has its primary key (what a one-off script does)
#   pipe, then key:               the same pipe into a table without the key, then ALTER TABLE … ADD
#                                 PRIMARY KEY (the hand-made "drop indexes during import")
#   tsmigrate run, create = true: tsmigrate creates the table, loads it, and adds the primary key
#                                 after the load
#
#   bench/indexed-target.sh [ROWS]      (default 5000000)
#
# Prints each time, rows/s and the ratios, median of ROUNDS (default 3). Checks the three tables
# hold the same rows (EXCEPT ALL) and that tsmigrate's has the primary key.
# Environment: ROUNDS, JOBS (tsmigrate --jobs), KEEP=1 keeps the cluster.
set -euo pipefail

ROWS=${1:-5000000}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

echo "== building tsmigrate (release)"
cargo build --release -q
BIN="$ROOT/target/release/tsmigrate"

# shellcheck source=../scripts/pg-throwaway.sh
. "$ROOT/scripts/pg-throwaway.sh"
pg_throwaway_start shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min maintenance_work_mem=512MB
trap pg_throwaway_stop EXIT
WORK=$PG_WORK
PORT=$PG_PORT
"${PSQL[@]}" -d postgres -c "CREATE DATABASE tb" -c "CREATE DATABASE iiot"

echo "== generating a ThingsBoard database of ~$ROWS ts_kv rows"
"${PSQL[@]}" -d tb -v rows="$ROWS" -f "$ROOT/examples/data/thingsboard-generate.sql"
N=$("${PSQL[@]}" -d tb -At -c "SELECT count(*) FROM ts_kv")
echo "   $N rows"

COLS='(device_id uuid, "timestamp" timestamptz, key text, value double precision, text_value text)'
KEY='(device_id, key, "timestamp")'
SELECT_SQL="SELECT t.entity_id, timestamptz 'epoch' + t.ts * interval '1 millisecond', d.key,
  COALESCE(t.dbl_v, t.long_v::float8, t.bool_v::int::float8), COALESCE(t.str_v, t.json_v::text)
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
create = true
allow_lossy = ["int_to_float"]
columns = [
  { name = "device_id", type = "uuid", expr = "entity_id" },
  { name = "timestamp", type = "timestamptz", expr = "from_epoch_ms(ts)" },
  { name = "key", type = "text", expr = "key" },
  { name = "value", type = "double precision", expr = "COALESCE(dbl_v, long_v::float8, bool_v::int::float8)" },
  { name = "text_value", type = "text", expr = "COALESCE(str_v, json_v::text)" },
]
TOML

now() { date +%s.%N; }
pipe() { "${PSQL[@]}" -d tb -c "COPY ($SELECT_SQL) TO STDOUT (FORMAT binary)" | "${PSQL[@]}" -d iiot -c "COPY $1 FROM STDIN (FORMAT binary)"; }
indexed=(); after=(); tsm=()
for r in $(seq 1 "$ROUNDS"); do
  "${PSQL[@]}" -d iiot -c "DROP TABLE IF EXISTS telemetry_indexed, telemetry_after, telemetry_tsm" \
    -c "DROP SCHEMA IF EXISTS tsmigrate CASCADE" \
    -c "CREATE TABLE telemetry_indexed $COLS" -c "ALTER TABLE telemetry_indexed ADD PRIMARY KEY $KEY" \
    -c "CREATE TABLE telemetry_after $COLS" -c CHECKPOINT
  a=$(now); pipe telemetry_indexed; b=$(now); indexed+=("$(echo "$b - $a" | bc)")
  "${PSQL[@]}" -d iiot -c CHECKPOINT
  a=$(now); pipe telemetry_after; "${PSQL[@]}" -d iiot -c "ALTER TABLE telemetry_after ADD PRIMARY KEY $KEY"
  b=$(now); after+=("$(echo "$b - $a" | bc)")
  "${PSQL[@]}" -d iiot -c CHECKPOINT
  a=$(now)
  "$BIN" run "$WORK/plan.toml" --progress off ${JOBS:+--jobs $JOBS} --rejects-dir "$WORK" >"$WORK/tsm.out"
  b=$(now); tsm+=("$(echo "$b - $a" | bc)")
  printf '   round %d: pipe into the indexed table %.1f s, pipe then key %.1f s, tsmigrate %.1f s\n' \
    "$r" "${indexed[-1]}" "${after[-1]}" "${tsm[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
I=$(median "${indexed[@]}"); A=$(median "${after[@]}"); T=$(median "${tsm[@]}")
echo
echo "== result ($N rows, median of $ROUNDS rounds, $(nproc) cores, PostgreSQL $("${PSQL[@]}" -d tb -At -c 'SHOW server_version'))"
printf '%-36s %8.1f s  %10.0f rows/s\n' "pipe into the indexed table" "$I" "$(echo "$N / $I" | bc -l)"
printf '%-36s %8.1f s  %10.0f rows/s\n' "pipe, then ADD PRIMARY KEY" "$A" "$(echo "$N / $A" | bc -l)"
printf '%-36s %8.1f s  %10.0f rows/s\n' "tsmigrate (key added after the load)" "$T" "$(echo "$N / $T" | bc -l)"
printf 'tsmigrate speed-up over the pipe into the indexed table: %.2fx\n' "$(echo "$I / $T" | bc -l)"
printf 'tsmigrate / (pipe, then key) time: %.2fx\n' "$(echo "$T / $A" | bc -l)"
echo "== checking the three tables hold the same rows and tsmigrate's has its key"
"${PSQL[@]}" -d iiot -At -c "SELECT 'rows: ' || (SELECT count(*) FROM telemetry_tsm) ||
   ', differing from the indexed pipe: ' || (SELECT count(*) FROM (SELECT * FROM telemetry_indexed EXCEPT ALL SELECT * FROM telemetry_tsm) x) ||
   ', from pipe-then-key: ' || (SELECT count(*) FROM (SELECT * FROM telemetry_after EXCEPT ALL SELECT * FROM telemetry_tsm) y) ||
   ', primary key: ' || (SELECT count(*) FROM pg_constraint WHERE conrelid = 'telemetry_tsm'::regclass AND contype = 'p')"
