#!/usr/bin/env bash
# Benchmark: a PostgreSQL table into a DynamoDB table (issue 8), beside the script a user writes
# by hand — psql COPY piped into boto3's batch_writer, the usual one-off migration — in one run,
# against one local moto server (PyPI moto[server]) on loopback.
#
#   bench/dynamodb.sh [ROWS]        (default 50,000)
#
# moto is a Python server: it, not the client, sets the pace, so this measures how close each
# client gets to what the server takes (with a fresh table per round), not DynamoDB's own
# speed. Both write the same items (PK, SK, entityType, value, note); each result is checked
# by a Scan count. Environment: ROUNDS (default 1), JOBS (default 2), CONCURRENCY (default 4;
# moto's threaded development server stalls beyond about 16 requests in flight).
set -euo pipefail

ROWS=${1:-50000}
ROUNDS=${ROUNDS:-1}
JOBS=${JOBS:-2}
CONCURRENCY=${CONCURRENCY:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
python3 -c "import moto.server, boto3" 2>/dev/null || { echo "moto[server] is needed: pip install 'moto[server]'" >&2; exit 1; }

echo "== building tsmigrate (release)"
cargo build --release -q
BIN="$ROOT/target/release/tsmigrate"

# shellcheck source=../scripts/pg-throwaway.sh
. "$ROOT/scripts/pg-throwaway.sh"
pg_throwaway_start
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true; pg_throwaway_stop' EXIT
ENDPOINT="http://127.0.0.1:$MOTO_PORT"
for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $MOTO_PORT))" 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
WORK=$PG_WORK
URL="postgres://postgres@127.0.0.1:$PG_PORT"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE src"
"${PSQL[@]}" -d src -c "CREATE TABLE readings (device int, seq bigint, value float8, note text, PRIMARY KEY (device, seq));
  INSERT INTO readings SELECT g % 500, g, g * 0.001, CASE WHEN g % 3 = 0 THEN NULL ELSE 'reading ' || g END
  FROM generate_series(1, $ROWS) g;"

cat >"$WORK/plan.toml" <<EOF
[source]
kind = "postgres"
url = "$URL/src"
[target]
kind = "dynamodb"
table = "TABLE_NAME"
region = "us-east-1"
endpoint_url = "$ENDPOINT"
partition_key = "PK"
sort_key = "SK"
concurrency = $CONCURRENCY
state = "$WORK/state.sqlite"
[[streams]]
name = "readings"
columns = [
  { name = "PK", expr = "'DEV#' || device" },
  { name = "SK", expr = "'SEQ#' || seq" },
  { name = "entityType", expr = "'READING'" },
  { name = "value" },
  { name = "note" },
]
EOF

PY_REF='
import csv, sys, boto3
from decimal import Decimal
t = boto3.resource("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1")
table = t.create_table(TableName=sys.argv[2], KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
    {"AttributeName": "SK", "KeyType": "RANGE"}], AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
    {"AttributeName": "SK", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
with table.batch_writer() as w:
    for device, seq, value, note in csv.reader(sys.stdin):
        item = {"PK": "DEV#" + device, "SK": "SEQ#" + seq, "entityType": "READING", "value": Decimal(value)}
        if note != "":
            item["note"] = note
        w.put_item(Item=item)
'
count() { # $1 table
  python3 -c "
import boto3, sys
c = boto3.client('dynamodb', endpoint_url='$ENDPOINT', region_name='us-east-1')
n, kw = 0, {}
while True:
    r = c.scan(TableName='$1', Select='COUNT', **kw); n += r['Count']
    if 'LastEvaluatedKey' not in r: break
    kw['ExclusiveStartKey'] = r['LastEvaluatedKey']
print(n)"
}
check() { # $1 label, $2 table
  local n; n=$(count "$2")
  if [ "$n" != "$ROWS" ]; then echo "!! $1: $n items for $ROWS rows"; exit 1; fi
}

now() { date +%s.%N; }
declare -A T
add() { T[$1]="${T[$1]:-} $2"; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r"
  a=$(now)
  "${PSQL[@]}" -d src -c "COPY readings TO STDOUT (FORMAT csv)" | python3 -c "$PY_REF" "$ENDPOINT" "ref$r"
  b=$(now); add ref "$(echo "$b - $a" | bc)"; check "psql | boto3 batch_writer" "ref$r"

  sed "s/TABLE_NAME/tsm$r/" "$WORK/plan.toml" >"$WORK/plan$r.toml"
  a=$(now)
  "$BIN" run "$WORK/plan$r.toml" --progress off --jobs "$JOBS" --rejects-dir "$WORK" >/dev/null
  b=$(now); add tsm "$(echo "$b - $a" | bc)"; check "tsmigrate" "tsm$r"
done

printf '\n%-40s %9s %10s %8s\n' "$ROWS rows" "seconds" "items/s" "vs ref"
row() { # $1 key, $2 label
  local m p; m=$(median "${T[$1]}"); p=$(median "${T[ref]}")
  printf '%-40s %9.1f %10.0f %7.2fx\n' "$2" "$m" "$(echo "$ROWS / $m" | bc -l)" "$(echo "$m / $p" | bc -l)"
}
row ref "psql | boto3 batch_writer (reference)"
row tsm "tsmigrate (jobs $JOBS, concurrency $CONCURRENCY)"
