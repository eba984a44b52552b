#!/usr/bin/env bash
# Makes examples/data/thingsboard.dump, the ThingsBoard backup the quickstart migrates: a
# throwaway PostgreSQL cluster, a generated ThingsBoard database (ROWS telemetry rows in
# monthly ts_kv partitions, default 400000, plus the values careless migrations lose), and a
# real `pg_dump -Fc` of it. Run it to rebuild the shipped file (OUT=… to write elsewhere).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROWS=${ROWS:-400000}
OUT=${OUT:-$ROOT/examples/data/thingsboard.dump}

# shellcheck source=../../scripts/pg-throwaway.sh
. "$ROOT/scripts/pg-throwaway.sh"
pg_throwaway_start
trap pg_throwaway_stop EXIT
"${PSQL[@]}" -d postgres -c "CREATE DATABASE thingsboard"
"${PSQL[@]}" -d thingsboard -v rows="$ROWS" -f "$ROOT/examples/data/thingsboard-generate.sql" >/dev/null
# A few values a careless migration loses; one device's additional_info is not JSON (the
# quickstart rejects it, with the reason, into devices.rejects.csv).
"${PSQL[@]}" -d thingsboard -f "$ROOT/examples/data/thingsboard-nasty.sql"
"$PG_BIN/pg_dump" -Fc -h 127.0.0.1 -p "$PG_PORT" -U postgres -f "$OUT" thingsboard
echo "wrote $OUT ($(du -h "$OUT" | cut -f1))"
