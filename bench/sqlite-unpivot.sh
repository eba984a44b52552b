#!/usr/bin/env bash
# Benchmark: SQLite wide readings → narrow point rows (seed migration 4), tsmigrate vs plain SQL.
#
#   bench/sqlite-unpivot.sh
#
# Generates a solar-inverter source (examples/data/make-solar-db.py --no-nasty; by default 20
# systems x 11,000 minutes, ~3.2M non-NULL point values) in a temp dir, then runs ROUNDS
# (default 3) rounds of, each into a fresh file:
#   sqlite3            examples/data/solar-unpivot.sql (INSERT … SELECT … UNION ALL over the 18
#                      columns JOIN point_info, one transaction); then, timed separately,
#                      CREATE INDEX on (system_id, point_id, measurement_time)
#   tsmigrate          `tsmigrate run examples/sqlite-readings-to-points.toml --stream
#                      point_readings` with `index_key = false` in [target] — the same work
#                      as the SQL unpivot (rows only, no index)
#   tsmigrate +index   the same with the default index_key = true (rows, then the key index)
#   tsmigrate +agg     the whole example: the points (with index) and their 5-minute
#                      aggregates (a second stream reading the source again)
# and checks after each round that the SQL unpivot and tsmigrate's points hold the same rows
# (EXCEPT both ways, equal counts, equal to the generator's count). Prints per round and as
# medians: seconds and point rows/s of each, the throughput ratios (tsmigrate / sqlite3 without
# and with the index), tsmigrate's peak RSS, and tsmigrate's rows/s against the seed's own
# migration script (2,951,120 point rows in 25.6 s, ~115,000 rows/s; ../shared/reference/seeds.md).
# All write with SQLite's default durability for WAL files (synchronous = NORMAL for tsmigrate).
# Environment: SYSTEMS (20), ROWS (11000 per system), ROUNDS (3), JOBS (tsmigrate --jobs),
# KEEP=1 keeps the temp dir (path printed).
set -euo pipefail

SYSTEMS=${SYSTEMS:-20}
ROWS=${ROWS:-11000}
ROUNDS=${ROUNDS:-3}
KEEP=${KEEP:-0}
REF_RPS=115000 # the seed's script: 2,951,120 rows in 25.6 s
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

echo "== building tsmigrate (release)"
cargo build --release -q -p tsmigrate
BIN="$ROOT/target/release/tsmigrate"
PLAN="$ROOT/examples/sqlite-readings-to-points.toml"
SQL="$ROOT/examples/data/solar-unpivot.sql"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tsmigrate-sqlite-bench.XXXXXX")
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "== kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== generating $SYSTEMS systems x $ROWS rows into $WORK/solar.db"
t0=$(date +%s.%N)
summary=$(python3 "$ROOT/examples/data/make-solar-db.py" "$WORK/solar.db" --systems "$SYSTEMS" --rows "$ROWS" --no-nasty)
echo "   $summary"
N=$(sed -n 's/.* \([0-9][0-9]*\) expected point rows.*/\1/p' <<<"$summary")
[ -n "$N" ] || { echo "cannot read the expected point rows from the generator's output" >&2; exit 1; }
printf '   expected point rows: %s (generated in %.1f s)\n' "$N" "$(echo "$(date +%s.%N) - $t0" | bc)"

now() { date +%s.%N; }
fresh() { rm -f "$1" "$1-wal" "$1-shm" "$1-journal"; }
rps() { printf '%.0f' "$(echo "$1 / $2" | bc -l)"; }

# The example with the key index switched off, for the like-for-like comparison.
NOIDX="$WORK/no-index.toml"
sed 's|^path = "${POINTS_DB:-/tmp/points.db}"$|&\nindex_key = false|' "$PLAN" >"$NOIDX"
grep -q '^index_key = false$' "$NOIDX" || { echo "could not add index_key = false to $PLAN" >&2; exit 1; }

# tsmigrate PLAN TARGET [args…]: runs tsmigrate into a fresh TARGET; prints the seconds.
tsm() {
  local plan=$1 target=$2; shift 2
  fresh "$target"
  local a; a=$(now)
  SOLAR_DB="$WORK/solar.db" POINTS_DB="$target" \
    /usr/bin/time -v -o "$WORK/time.txt" "$BIN" run "$plan" --yes --progress off ${JOBS:+--jobs $JOBS} \
    --rejects-dir "$WORK" --report "$WORK/report.json" "$@" >"$WORK/tsm.out" 2>&1 \
    || { echo "tsmigrate run failed:" >&2; cat "$WORK/tsm.out" >&2; exit 1; }
  echo "$(now) - $a" | bc
}
peak() { awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt"; }

sql_times=(); idx_times=(); tsm_times=(); tsmi_times=(); agg_times=(); rss=()
for r in $(seq 1 "$ROUNDS"); do
  # (a) the SQL reference, then its index.
  fresh "$WORK/expected.db"
  a=$(now)
  sqlite3 "$WORK/solar.db" "ATTACH '$WORK/expected.db' AS t" ".read $SQL"
  b=$(now); sql_times+=("$(echo "$b - $a" | bc)")
  sqlite3 "$WORK/expected.db" "CREATE INDEX point_readings_key ON point_readings (system_id, point_id, measurement_time)"
  c=$(now); idx_times+=("$(echo "$c - $b" | bc)")

  # (b) tsmigrate: rows only; rows and index; the whole example with aggregates. Its ledger
  # lives in the target file, so each starts afresh.
  tsm_times+=("$(tsm "$NOIDX" "$WORK/points.db" --stream point_readings)"); rss+=("$(peak)")
  tsmi_times+=("$(tsm "$PLAN" "$WORK/points-index.db" --stream point_readings)"); rss+=("$(peak)")
  agg_times+=("$(tsm "$PLAN" "$WORK/points-agg.db")"); rss+=("$(peak)")
  AGG=$(sqlite3 "$WORK/points-agg.db" "SELECT count(*) FROM point_readings_agg_5m")

  # Same rows on both sides?
  read -r n_sql n_tsm only_sql only_tsm < <(sqlite3 -separator ' ' "$WORK/expected.db" \
    "ATTACH '$WORK/points.db' AS b" \
    "SELECT (SELECT count(*) FROM main.point_readings), (SELECT count(*) FROM b.point_readings),
       (SELECT count(*) FROM (SELECT system_id, point_id, measurement_time, value FROM main.point_readings
                              EXCEPT SELECT system_id, point_id, measurement_time, value FROM b.point_readings)),
       (SELECT count(*) FROM (SELECT system_id, point_id, measurement_time, value FROM b.point_readings
                              EXCEPT SELECT system_id, point_id, measurement_time, value FROM main.point_readings))")
  S=${sql_times[-1]}; I=${idx_times[-1]}; T=${tsm_times[-1]}; TI=${tsmi_times[-1]}; TA=${agg_times[-1]}
  printf '   round %d: sqlite3 %.2f s (+index %.2f s) | tsmigrate %.2f s, +index %.2f s, +agg %.2f s (%s aggregate rows) | ratios %.2fx, with index %.2fx\n' \
    "$r" "$S" "$I" "$T" "$TI" "$TA" "$AGG" "$(echo "$S / $T" | bc -l)" "$(echo "($S + $I) / $TI" | bc -l)"
  if [ "$n_sql" != "$N" ] || [ "$n_tsm" != "$N" ] || [ "$only_sql" != 0 ] || [ "$only_tsm" != 0 ]; then
    echo "   MISMATCH: expected $N rows; sqlite3 $n_sql, tsmigrate $n_tsm; only in sqlite3's $only_sql, only in tsmigrate's $only_tsm" >&2
    KEEP=1
    exit 1
  fi
  echo "   round $r: both targets hold the same $N rows"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
S=$(median "${sql_times[@]}"); I=$(median "${idx_times[@]}"); T=$(median "${tsm_times[@]}")
TI=$(median "${tsmi_times[@]}"); TA=$(median "${agg_times[@]}")
SI=$(echo "$S + $I" | bc)
R=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
echo
echo "== result ($N point rows from $SYSTEMS systems x $ROWS wide rows, median of $ROUNDS rounds, $(nproc) cores, sqlite3 $(sqlite3 --version | cut -d' ' -f1))"
printf '%-44s %8.2f s  %10s rows/s\n' "sqlite3 SQL unpivot" "$S" "$(rps "$N" "$S")"
printf '%-44s %8.2f s  %10s rows/s\n' "tsmigrate run (index_key = false)" "$T" "$(rps "$N" "$T")"
printf '%-44s %8.2f s  %10s rows/s\n' "sqlite3 SQL unpivot + CREATE INDEX" "$SI" "$(rps "$N" "$SI")"
printf '%-44s %8.2f s  %10s rows/s\n' "tsmigrate run (key index, the default)" "$TI" "$(rps "$N" "$TI")"
printf '%-44s %8.2f s  (%s point + %s aggregate rows)\n' "tsmigrate run, points + 5-minute aggregates" "$TA" "$N" "$AGG"
printf 'tsmigrate / sqlite3 throughput ratio: %.2fx without the index, %.2fx with it\n' \
  "$(echo "$S / $T" | bc -l)" "$(echo "$SI / $TI" | bc -l)"
printf 'tsmigrate / seed script (%s rows/s) ratio: %.2fx (without the index), %.2fx (with it)\n' "$REF_RPS" \
  "$(echo "$N / $T / $REF_RPS" | bc -l)" "$(echo "$N / $TI / $REF_RPS" | bc -l)"
printf 'tsmigrate peak RSS: %d MiB\n' "$(( R / 1024 ))"
