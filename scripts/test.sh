#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the PostgreSQL server if it is missing
# (tests start throwaway clusters from its initdb/pg_ctl), then formatting, lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg_server() {
  [ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || command -v initdb >/dev/null 2>&1
}
# The SQLite tests compare tsmigrate with an SQL unpivot run by the sqlite3 shell, on files
# made by a python3 generator.
if ! have_pg_server || ! command -v psql >/dev/null 2>&1 || ! command -v pg_dump >/dev/null 2>&1 \
  || ! command -v sqlite3 >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
  echo "== installing PostgreSQL (server binaries for throwaway test clusters), sqlite3, python3"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq postgresql postgresql-client sqlite3 python3 >/dev/null
fi
# Tests run initdb/pg_ctl as the postgres user when run as root.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --create-home postgres
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
