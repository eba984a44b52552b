#!/usr/bin/env bash
# Benchmark: SQLite wide readings → narrow point rows (seed migration 4), tsmigrate vs plain SQL.
#
#   bench/sqlite-unpivot.sh
#
# Generates a solar-inverter source (examples/data/make-solar-db.py --no-nasty; by default 20
# systems x 11,000 minutes, ~3.3M non-NULL point values) in a temp dir, then runs ROUNDS
# (default 3) rounds of
#   sqlite3:   examples/data/solar-unpivot.sql (INSERT … SELECT … UNION ALL over the 18
#              columns JOIN point_info, one transaction) into a fresh file
#   tsmigrate: `tsmigrate run examples/sqlite-readings-to-points.toml` (SOLAR_DB / POINTS_DB
#              pointing at the temp files) into a fresh file
# and checks after each round that both targets hold the same rows (EXCEPT both ways, equal
# counts, equal to the generator's count). Prints per round and as medians: point rows, seconds
# and rows/s of each, tsmigrate / sqlite3 throughput, tsmigrate's peak RSS, and tsmigrate's
# rows/s against the seed's own migration script (2,951,120 point rows in 25.6 s, ~115,000
# rows/s; ../shared/reference/seeds.md). Both write with SQLite's default durability.
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

sql_times=(); tsm_times=(); rss=()
for r in $(seq 1 "$ROUNDS"); do
  # (a) the SQL reference.
  fresh "$WORK/expected.db"
  a=$(now)
  sqlite3 "$WORK/solar.db" "ATTACH '$WORK/expected.db' AS t" ".read $SQL"
  b=$(now); sql_times+=("$(echo "$b - $a" | bc)")

  # (b) tsmigrate, into a fresh file (its ledger lives in the target file, so it starts afresh).
  fresh "$WORK/points.db"
  a=$(now)
  SOLAR_DB="$WORK/solar.db" POINTS_DB="$WORK/points.db" \
    /usr/bin/time -v -o "$WORK/time.txt" "$BIN" run "$PLAN" --yes --progress off ${JOBS:+--jobs $JOBS} \
    --rejects-dir "$WORK" --report "$WORK/report.json" >"$WORK/tsm.out" 2>&1 \
    || { echo "tsmigrate run failed:"; cat "$WORK/tsm.out"; exit 1; }
  b=$(now); tsm_times+=("$(echo "$b - $a" | bc)")
  rss+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")")

  # Same rows on both sides?
  read -r n_sql n_tsm only_sql only_tsm < <(sqlite3 -separator ' ' "$WORK/expected.db" \
    "ATTACH '$WORK/points.db' AS b" \
    "SELECT (SELECT count(*) FROM main.point_readings), (SELECT count(*) FROM b.point_readings),
       (SELECT count(*) FROM (SELECT system_id, point_id, measurement_time, value FROM main.point_readings
                              EXCEPT SELECT system_id, point_id, measurement_time, value FROM b.point_readings)),
       (SELECT count(*) FROM (SELECT system_id, point_id, measurement_time, value FROM b.point_readings
                              EXCEPT SELECT system_id, point_id, measurement_time, value FROM main.point_readings))")
  S=${sql_times[-1]}; T=${tsm_times[-1]}
  printf '   round %d: sqlite3 %s rows %.2f s %s rows/s | tsmigrate %s rows %.2f s %s rows/s (peak RSS %d MiB) | tsmigrate/sqlite3 %.2fx\n' \
    "$r" "$n_sql" "$S" "$(rps "$n_sql" "$S")" "$n_tsm" "$T" "$(rps "$n_tsm" "$T")" "$(( ${rss[-1]} / 1024 ))" \
    "$(echo "$S / $T" | bc -l)"
  if [ "$n_sql" != "$N" ] || [ "$n_tsm" != "$N" ] || [ "$only_sql" != 0 ] || [ "$only_tsm" != 0 ]; then
    echo "   MISMATCH: expected $N rows; sqlite3 $n_sql, tsmigrate $n_tsm; only in sqlite3's $only_sql, only in tsmigrate's $only_tsm" >&2
    KEEP=1
    exit 1
  fi
  echo "   round $r: both targets hold the same $N rows"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
S=$(median "${sql_times[@]}"); T=$(median "${tsm_times[@]}")
R=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
echo
echo "== result ($N point rows from $SYSTEMS systems x $ROWS wide rows, median of $ROUNDS rounds, $(nproc) cores, sqlite3 $(sqlite3 --version | cut -d' ' -f1))"
printf '%-34s %8.2f s  %10s rows/s\n' "sqlite3 SQL unpivot" "$S" "$(rps "$N" "$S")"
printf '%-34s %8.2f s  %10s rows/s\n' "tsmigrate run" "$T" "$(rps "$N" "$T")"
printf 'tsmigrate / sqlite3 throughput ratio: %.2fx\n' "$(echo "$S / $T" | bc -l)"
printf 'tsmigrate / seed script (%s rows/s) ratio: %.2fx\n' "$REF_RPS" "$(echo "$N / $T / $REF_RPS" | bc -l)"
printf 'tsmigrate peak RSS: %d MiB\n' "$(( R / 1024 ))"
