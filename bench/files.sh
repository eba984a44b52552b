#!/usr/bin/env bash
# Benchmark: a PostgreSQL table to Parquet and CSV files and back (issue 9), beside the
# references a user would script by hand, in one run on one throwaway cluster.
#
#   bench/files.sh [DAYS] [METRICS]      (default 14 days x 20 metrics = 2.4M rows)
#
# The source is examples/data/factory-metrics.sql (uuid, timestamptz, float8, bigint, text,
# smallint). Timed, each ROUNDS times (median shown):
#   export to CSV
#     psql COPY TO (csv)     COPY metric_hist TO STDOUT (FORMAT csv, HEADER) > file — the reference
#     tsmigrate csv          tsmigrate run, [target] kind = "csv" (--jobs JOBS)
#   export to Parquet (zstd)
#     psql | pyarrow         COPY … (FORMAT csv) | pyarrow.csv.read_csv (typed) → pq.write_table — the reference
#     tsmigrate parquet      tsmigrate run, [target] kind = "parquet"
#   import from Parquet
#     pyarrow | psql         pq.read_table → pyarrow.csv.write_csv | COPY FROM STDIN (csv) — the reference
#     tsmigrate parquet→pg   tsmigrate run, [source] kind = "parquet", binary COPY into PostgreSQL
# Every import is compared with the source (count and md5 of all rows), so the Parquet files
# are checked too; the CSV exports are checked by their line counts (the tests compare CSV
# values one by one).
# Environment: ROUNDS (default 1), JOBS (default 2), KEEP=1 keeps the cluster.
set -euo pipefail

DAYS=${1:-14}
METRICS=${2:-20}
ROUNDS=${ROUNDS:-1}
JOBS=${JOBS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
python3 -c "import pyarrow" 2>/dev/null || { echo "pyarrow is needed: pip install pyarrow" >&2; exit 1; }

echo "== building tsmigrate (release)"
cargo build --release -q
BIN="$ROOT/target/release/tsmigrate"

# shellcheck source=../scripts/pg-throwaway.sh
. "$ROOT/scripts/pg-throwaway.sh"
pg_throwaway_start shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min
trap pg_throwaway_stop EXIT
WORK=$PG_WORK
URL="postgres://postgres@127.0.0.1:$PG_PORT"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE src"

echo "== generating $DAYS days x $METRICS metrics"
"${PSQL[@]}" -d src -v days="$DAYS" -v metrics="$METRICS" -f "$ROOT/examples/data/factory-metrics.sql" >/dev/null
N=$("${PSQL[@]}" -d src -At -c "SELECT count(*) FROM metric_hist")
SIZE=$("${PSQL[@]}" -d src -At -c "SELECT pg_size_pretty(pg_total_relation_size('metric_hist'))")
echo "   $N rows, $SIZE"
DIGEST_SQL="SELECT count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM metric_hist t"
SRC_DIGEST=$("${PSQL[@]}" -d src -At -c "$DIGEST_SQL")
TABLE="CREATE TABLE metric_hist (metric_def_id uuid NOT NULL, ts timestamptz NOT NULL, value_real float8,
  value_int bigint, value_text text, quality smallint NOT NULL);"

fresh() { # an empty database dst with the table
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS dst" -c "CREATE DATABASE dst" >/dev/null
  "${PSQL[@]}" -d dst -c "$TABLE" >/dev/null
  "${PSQL[@]}" -d postgres -c CHECKPOINT >/dev/null
}
check_same() { # $1 = label
  local d
  d=$("${PSQL[@]}" -d dst -At -c "$DIGEST_SQL")
  if [ "$d" != "$SRC_DIGEST" ]; then echo "!! $1: the target differs from the source ($d vs $SRC_DIGEST)"; exit 1; fi
}
check_lines() { # $1 = label, $2.. = files; one header line per file
  local lines files
  files=$(( $# - 1 ))
  lines=$(cat "${@:2}" | wc -l)
  # Text values hold no newlines in this data, so lines = rows + headers.
  if [ "$lines" != "$(( N + files ))" ]; then echo "!! $1: $lines lines for $N rows in $files file(s)"; exit 1; fi
}
export_plan() { # $1 = kind
  printf '[source]\nkind = "postgres"\nurl = "%s/src"\n[target]\nkind = "%s"\npath = "%s/%s"\n[[streams]]\nname = "metric_hist"\n' \
    "$URL" "$1" "$WORK" "$1"
}
export_plan csv >"$WORK/to-csv.toml"
export_plan parquet >"$WORK/to-parquet.toml"
printf '[source]\nkind = "parquet"\npath = "%s/parquet"\n[target]\nkind = "postgres"\nurl = "%s/dst"\n[[streams]]\nname = "metric_hist"\n' \
  "$WORK" "$URL" >"$WORK/from-parquet.toml"

PY_EXPORT='
import sys, pyarrow as pa, pyarrow.csv as pc, pyarrow.parquet as pq
types = {"metric_def_id": pa.string(), "ts": pa.timestamp("us", tz="UTC"), "value_real": pa.float64(),
         "value_int": pa.int64(), "value_text": pa.string(), "quality": pa.int16()}
# NULL is an empty field, "" an empty string (pyarrow reads both as "" unless told).
opts = pc.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False)
t = pc.read_csv(sys.stdin.buffer, convert_options=opts)
pq.write_table(t, sys.argv[1], compression="zstd")
'
PY_IMPORT='
import sys, pyarrow.csv as pc, pyarrow.parquet as pq
pc.write_csv(pq.read_table(sys.argv[1]), sys.stdout.buffer)
'

now() { date +%s.%N; }
declare -A T
add() { T[$1]="${T[$1]:-} $2"; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r"
  rm -rf "$WORK/csv" "$WORK/parquet" "$WORK/ref.csv" "$WORK/ref.parquet"
  a=$(now)
  "${PSQL[@]}" -d src -c "COPY metric_hist TO STDOUT (FORMAT csv, HEADER)" >"$WORK/ref.csv"
  b=$(now); add csv_ref "$(echo "$b - $a" | bc)"; check_lines "psql COPY TO csv" "$WORK/ref.csv"

  a=$(now)
  "$BIN" run "$WORK/to-csv.toml" --progress off --jobs "$JOBS" --rejects-dir "$WORK" >/dev/null
  b=$(now); add csv_tsm "$(echo "$b - $a" | bc)"; check_lines "tsmigrate csv" "$WORK"/csv/metric_hist/part-*.csv

  a=$(now)
  "${PSQL[@]}" -d src -c "COPY metric_hist TO STDOUT (FORMAT csv, HEADER)" | python3 -c "$PY_EXPORT" "$WORK/ref.parquet"
  b=$(now); add pq_ref "$(echo "$b - $a" | bc)"

  a=$(now)
  "$BIN" run "$WORK/to-parquet.toml" --progress off --jobs "$JOBS" --rejects-dir "$WORK" >/dev/null
  b=$(now); add pq_tsm "$(echo "$b - $a" | bc)"

  fresh
  a=$(now)
  python3 -c "$PY_IMPORT" "$WORK/ref.parquet" | "${PSQL[@]}" -d dst -c "COPY metric_hist FROM STDIN (FORMAT csv, HEADER)"
  b=$(now); add imp_ref "$(echo "$b - $a" | bc)"; check_same "pyarrow | psql"

  fresh
  a=$(now)
  "$BIN" run "$WORK/from-parquet.toml" --restart --progress off --jobs "$JOBS" --rejects-dir "$WORK" >/dev/null
  b=$(now); add imp_tsm "$(echo "$b - $a" | bc)"; check_same "tsmigrate parquet -> PostgreSQL"
done

size() { du -cb "$@" | tail -1 | awk '{printf "%.1f MiB", $1 / 1048576}'; }
printf '\n%-36s %9s %10s %8s  %s\n' "$N rows" "seconds" "rows/s" "vs ref" "output"
row() { # $1 key, $2 reference key, $3 label, $4 output size
  local m p; m=$(median "${T[$1]}"); p=$(median "${T[$2]}")
  printf '%-36s %9.1f %10.0f %7.2fx  %s\n' "$3" "$m" "$(echo "$N / $m" | bc -l)" "$(echo "$m / $p" | bc -l)" "$4"
}
row csv_ref csv_ref "psql COPY TO csv (reference)" "$(size "$WORK/ref.csv")"
row csv_tsm csv_ref "tsmigrate -> csv" "$(size "$WORK"/csv/metric_hist/*.csv)"
row pq_ref pq_ref "psql | pyarrow -> parquet (reference)" "$(size "$WORK/ref.parquet")"
row pq_tsm pq_ref "tsmigrate -> parquet (zstd)" "$(size "$WORK"/parquet/metric_hist/*.parquet)"
row imp_ref imp_ref "pyarrow | psql COPY (reference)" ""
row imp_tsm imp_ref "tsmigrate parquet -> PostgreSQL" ""
echo "every import equal to the source (count + md5 of all rows); CSV exports hold one line per row"
