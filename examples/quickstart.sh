#!/usr/bin/env bash
# A real migration on this machine, with nothing to set up but the PostgreSQL server binaries:
# starts a throwaway PostgreSQL cluster in a temp dir, generates a ThingsBoard database
# (ROWS telemetry rows, default 200000, plus a few awkward values), and runs
# examples/thingsboard-to-postgres.toml into a second database: check, dry run, run, verify.
# Prints the summary and a few migrated rows, then removes the cluster (KEEP=1 keeps it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROWS=${ROWS:-200000}

echo "== building tsmigrate"
cargo build --release -q
BIN="$ROOT/target/release/tsmigrate"

# shellcheck source=../scripts/pg-throwaway.sh
. "$ROOT/scripts/pg-throwaway.sh"
pg_throwaway_start
trap pg_throwaway_stop EXIT
"${PSQL[@]}" -d postgres -c "CREATE DATABASE thingsboard" -c "CREATE DATABASE iiot"

echo "== generating a ThingsBoard database (~$ROWS telemetry rows)"
"${PSQL[@]}" -d thingsboard -v rows="$ROWS" -f examples/data/thingsboard-generate.sql
# A few values a careless migration loses (examples/data/thingsboard-nasty.sql).
"${PSQL[@]}" -d thingsboard -f examples/data/thingsboard-nasty.sql

export TB_URL="postgres://postgres@127.0.0.1:$PG_PORT/thingsboard"
export TARGET_URL="postgres://postgres@127.0.0.1:$PG_PORT/iiot"
PLAN=examples/thingsboard-to-postgres.toml
cd "$PG_WORK"

echo; echo "== tsmigrate check $PLAN"
"$BIN" check "$ROOT/$PLAN"
echo; echo "== tsmigrate run --dry-run --limit 3 $PLAN"
"$BIN" run "$ROOT/$PLAN" --dry-run --limit 3 --preview 3
echo; echo "== tsmigrate run $PLAN --max-rejects 10"
"$BIN" run "$ROOT/$PLAN" --max-rejects 10 --report "$PG_WORK/report.json"

echo; echo "== tsmigrate verify $PLAN --sample 20 (source and target compared row by row)"
"$BIN" verify "$ROOT/$PLAN" --sample 20

echo; echo "== rejected rows (devices.rejects.csv)"
cat "$PG_WORK/devices.rejects.csv"
echo; echo "== a few migrated rows"
"${PSQL[@]}" -d iiot -c "SELECT device_id, \"timestamp\", key, value, text_value, metadata FROM telemetry
  WHERE \"timestamp\" < '2025-01-01' OR text_value LIKE '%tab%' OR text_value LIKE '9007%' OR text_value LIKE '{%'
     OR value = 'NaN' ORDER BY \"timestamp\""
"${PSQL[@]}" -d iiot -c "SELECT name, area, metadata, protocol, status FROM devices ORDER BY name LIMIT 3"
