#!/usr/bin/env bash
# Benchmark: loading a PostgreSQL table into a TimescaleDB hypertable (migration 5), and the
# loading strategies the issue asks about, in one run on one throwaway cluster.
#
#   bench/timescaledb.sh [DAYS] [METRICS]      (default 14 days x 20 metrics = 2.4M rows)
#
# Needs TimescaleDB installed for the system's PostgreSQL (timescaledb.so beside the server
# binaries); it is not packaged for Debian, so this is run by hand where it is.
#
# The source is examples/data/factory-metrics.sql, stored twice: as generated (metric by
# metric, each metric's whole history together: "metric-major") and sorted by time
# ("time-major", as a live table fills). Each variant loads into a fresh hypertable with
# 1-hour chunks (as the example plan) and is timed:
#   psql COPY pipe      COPY TO STDOUT (binary) | COPY FROM STDIN into the hypertable — the reference
#   tsmigrate           tsmigrate run (binary COPY into the hypertable, --jobs JOBS)
#   tsmigrate sorted    the same from the time-major table
#   staging + move      COPY into a plain staging table, INSERT INTO hypertable SELECT, drop it
#   plain + convert     COPY into a plain table, then create_hypertable(…, migrate_data => true)
# then the compression of the loaded hypertable (tsmigrate --compress, the time and the bytes
# before and after). Every target is compared with the source (count and md5 of all rows).
# Environment: ROUNDS (default 1), JOBS (default 2), KEEP=1 keeps the cluster.
set -euo pipefail

DAYS=${1:-14}
METRICS=${2:-20}
ROUNDS=${ROUNDS:-1}
JOBS=${JOBS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if ! ls /usr/lib/postgresql/*/lib/timescaledb.so >/dev/null 2>&1; then
  echo "TimescaleDB is not installed for the system's PostgreSQL; nothing to measure" >&2
  exit 1
fi

echo "== building tsmigrate (release)"
cargo build --release -q
BIN="$ROOT/target/release/tsmigrate"

# shellcheck source=../scripts/pg-throwaway.sh
. "$ROOT/scripts/pg-throwaway.sh"
pg_throwaway_start shared_preload_libraries=timescaledb timescaledb.telemetry_level=off \
  shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min max_worker_processes=16
trap pg_throwaway_stop EXIT
WORK=$PG_WORK
PORT=$PG_PORT
URL="postgres://postgres@127.0.0.1:$PORT"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE src"

echo "== generating $DAYS days x $METRICS metrics"
"${PSQL[@]}" -d src -v days="$DAYS" -v metrics="$METRICS" -f "$ROOT/examples/data/factory-metrics.sql" >/dev/null
"${PSQL[@]}" -d src -c "CREATE TABLE metric_hist_by_time AS SELECT * FROM metric_hist ORDER BY ts, metric_def_id" \
  -c "ANALYZE metric_hist_by_time" >/dev/null
N=$("${PSQL[@]}" -d src -At -c "SELECT count(*) FROM metric_hist")
SIZE=$("${PSQL[@]}" -d src -At -c "SELECT pg_size_pretty(pg_total_relation_size('metric_hist'))")
echo "   $N rows, $SIZE"
DIGEST_SQL="SELECT count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM metric_hist t"
SRC_DIGEST=$("${PSQL[@]}" -d src -At -c "$DIGEST_SQL")

HYPERTABLE="CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE metric_hist (metric_def_id uuid NOT NULL, ts timestamptz NOT NULL, value_real float8,
  value_int bigint, value_text text, quality smallint NOT NULL);"
MAKE_HYPER="SELECT create_hypertable('metric_hist', by_range('ts', INTERVAL '1 hour'));"

fresh() { # $1 = database; a hypertable metric_hist unless $2 = plain
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  "${PSQL[@]}" -d "$1" -c "$HYPERTABLE" >/dev/null
  if [ "${2:-}" != plain ]; then "${PSQL[@]}" -d "$1" -c "$MAKE_HYPER" >/dev/null; fi
  "${PSQL[@]}" -d postgres -c CHECKPOINT >/dev/null
}
check_same() { # $1 = database, $2 = label
  local d
  d=$("${PSQL[@]}" -d "$1" -At -c "$DIGEST_SQL")
  if [ "$d" != "$SRC_DIGEST" ]; then echo "!! $2: the target differs from the source ($d vs $SRC_DIGEST)"; exit 1; fi
}
plan() { # $1 = source table, $2 = extra target lines
  cat <<TOML
[source]
kind = "postgres"
url = "$URL/src"
[target]
kind = "timescaledb"
url = "$URL/dst"
$2
[target.hypertables.metric_hist]
time = "ts"
chunk_interval = "1h"
segment_by = ["metric_def_id"]
order_by = ["ts DESC"]
[[streams]]
name = "metric_hist"
from = "$1"
table = "metric_hist"
TOML
}
plan metric_hist "" >"$WORK/metric.toml"
plan metric_hist_by_time "" >"$WORK/time.toml"

now() { date +%s.%N; }
declare -A T
add() { T[$1]="${T[$1]:-} $2"; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r"
  fresh dst
  a=$(now)
  "${PSQL[@]}" -d src -c "COPY metric_hist TO STDOUT (FORMAT binary)" \
    | "${PSQL[@]}" -d dst -c "COPY metric_hist FROM STDIN (FORMAT binary)" >/dev/null
  b=$(now); add pipe "$(echo "$b - $a" | bc)"; check_same dst "psql COPY pipe"

  fresh dst
  a=$(now)
  "$BIN" run "$WORK/metric.toml" --restart --progress off --jobs "$JOBS" --rejects-dir "$WORK" >"$WORK/metric.out"
  b=$(now); add tsm "$(echo "$b - $a" | bc)"; check_same dst "tsmigrate"

  fresh dst
  a=$(now)
  "$BIN" run "$WORK/time.toml" --restart --progress off --jobs "$JOBS" --rejects-dir "$WORK" >"$WORK/time.out"
  b=$(now); add sorted "$(echo "$b - $a" | bc)"; check_same dst "tsmigrate sorted"

  fresh dst
  a=$(now)
  "${PSQL[@]}" -d dst -c "CREATE UNLOGGED TABLE stage (LIKE metric_hist)" >/dev/null
  "${PSQL[@]}" -d src -c "COPY metric_hist TO STDOUT (FORMAT binary)" \
    | "${PSQL[@]}" -d dst -c "COPY stage FROM STDIN (FORMAT binary)" >/dev/null
  "${PSQL[@]}" -d dst -c "INSERT INTO metric_hist SELECT * FROM stage" -c "DROP TABLE stage" >/dev/null
  b=$(now); add stage "$(echo "$b - $a" | bc)"; check_same dst "staging + move"

  fresh dst plain
  a=$(now)
  "${PSQL[@]}" -d src -c "COPY metric_hist TO STDOUT (FORMAT binary)" \
    | "${PSQL[@]}" -d dst -c "COPY metric_hist FROM STDIN (FORMAT binary)" >/dev/null
  "${PSQL[@]}" -d dst -c "SELECT create_hypertable('metric_hist', by_range('ts', INTERVAL '1 hour'), migrate_data => true)" >/dev/null
  b=$(now); add convert "$(echo "$b - $a" | bc)"; check_same dst "plain + convert"

  # Compression of the time-major load (the last tsmigrate target is gone: load it again).
  fresh dst
  "$BIN" run "$WORK/time.toml" --restart --progress off --jobs "$JOBS" --rejects-dir "$WORK" >/dev/null
  "${PSQL[@]}" -d dst -c "VACUUM ANALYZE metric_hist" >/dev/null
  a=$(now)
  "$BIN" run "$WORK/time.toml" --compress --progress off --report "$WORK/compress.json" >"$WORK/compress.out"
  b=$(now); add compress "$(echo "$b - $a" | bc)"; check_same dst "compressed"
done

p=$(median "${T[pipe]}")
printf '\n%-34s %9s %10s %8s\n' "load of $N rows into a hypertable" "seconds" "rows/s" "vs pipe"
row() { local m; m=$(median "${T[$1]}"); printf '%-34s %9.1f %10.0f %7.2fx\n' "$2" "$m" "$(echo "$N / $m" | bc -l)" "$(echo "$m / $p" | bc -l)"; }
row pipe "psql COPY pipe (reference)"
row tsm "tsmigrate, metric-major source"
row sorted "tsmigrate, time-major source"
row stage "staging table + INSERT SELECT"
row convert "plain table + migrate_data"
echo
python3 - "$WORK/compress.json" "$(median "${T[compress]}")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = next(s for s in r["streams"] if s.get("compression"))["compression"]
print(f"compression (--compress, {sys.argv[2]} s): {c['chunks_compressed']} of {c['chunks_total']} chunks, "
      f"{c['bytes_before']/2**20:.1f} MiB -> {c['bytes_after']/2**20:.1f} MiB "
      f"({100 * (1 - c['bytes_after'] / c['bytes_before']):.1f}% saved)")
PY
echo "every target equal to the source (count + md5 of all rows)"
