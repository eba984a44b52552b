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
# A long beyond 2^53, NaN, a string with a tab and a newline, JSON, a row in the default
# partition, a device whose additional_info is not JSON (the quickstart rejects it, with the
# reason, into devices.rejects.csv).
"${PSQL[@]}" -d thingsboard <<'SQL'
INSERT INTO ts_kv VALUES
 ('00000000-0000-4000-8000-000000000001', 21, 1754006400001, NULL, NULL, 9007199254740993, NULL, NULL),
 ('00000000-0000-4000-8000-000000000001', 1, 1754006400002, NULL, NULL, NULL, 'NaN', NULL),
 ('00000000-0000-4000-8000-000000000001', 27, 1754006400003, NULL, E'tab\there\nnew line', NULL, NULL, NULL),
 ('00000000-0000-4000-8000-000000000001', 27, 1754006400004, NULL, NULL, NULL, NULL, '{"fw":"1.2.3","ok":true}'),
 ('00000000-0000-4000-8000-000000000002', 1, 0, NULL, NULL, NULL, 21.5, NULL);
INSERT INTO device VALUES ('00000000-0000-4000-8000-000000000099', 1754006400000, '{"broken": ', NULL, NULL, NULL,
  'tank', 'Tank 99', 'Area Z', '10000000-0000-4000-8000-000000000001');
SQL
"$PG_BIN/pg_dump" -Fc -h 127.0.0.1 -p "$PG_PORT" -U postgres -f "$OUT" thingsboard
echo "wrote $OUT ($(du -h "$OUT" | cut -f1))"
