# Shell helpers (sourced) for a throwaway PostgreSQL cluster in a temp dir, as used by
# examples/quickstart.sh and bench/*.sh. Sets PG_WORK, PG_PORT and the PSQL array.
# When run as root, the server runs as the `postgres` user.

pg_throwaway_start() { # extra `-c name=value` settings as arguments
  local bindir
  bindir=$(pg_config --bindir 2>/dev/null || true)
  [ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ ! -x "$bindir/initdb" ]; then
    echo "PostgreSQL server binaries not found: apt-get install postgresql" >&2
    return 1
  fi
  PG_BIN=$bindir
  PG_WORK=$(mktemp -d /tmp/tsmigrate-pg.XXXXXX)
  chmod 755 "$PG_WORK"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_WORK"; fi
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local opts="-p $PG_PORT -k $PG_WORK -c listen_addresses=127.0.0.1"
  for s in "$@"; do opts="$opts -c $s"; done
  _as_pg "$PG_BIN/initdb" -A trust -U postgres -D "$PG_WORK/data" -E UTF8 --locale=C >/dev/null
  _as_pg "$PG_BIN/pg_ctl" -w -D "$PG_WORK/data" -l "$PG_WORK/server.log" -o "$opts" start >/dev/null
  PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
}

pg_throwaway_stop() {
  [ -n "${PG_WORK:-}" ] || return 0
  _as_pg "$PG_BIN/pg_ctl" -D "$PG_WORK/data" -m fast stop >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $PG_WORK (port $PG_PORT)"; else rm -rf "$PG_WORK"; fi
}

_as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
