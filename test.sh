#!/usr/bin/env bash
# Runs every ServerSan test.
#
# The storage tests need a real MySQL-compatible server. When none answers at
# SERVERSAN_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306), this script
# provisions MariaDB on this machine (Debian: apt-get install mariadb-server,
# then start it without systemd) and creates a password-less test user
# reachable over TCP. It also installs the few tools the tests call
# (shellcheck for the installer tests). Everything else is plain cargo.
#
# Usage: ./test.sh [extra cargo test arguments]
set -euo pipefail

cd "$(dirname "$0")"

log() { printf 'test.sh: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root (or sudo) to run: $*"
    return 1
  fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# host, port and user of the test server, from the URL.
url="${SERVERSAN_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}"
hostport="${url#mysql://}"
hostport="${hostport#*@}"
hostport="${hostport%%/*}"
db_host="${hostport%%:*}"
db_port="${hostport##*:}"
[ "$db_port" = "$hostport" ] && db_port=3306

mysql_answers() {
  command -v mariadb >/dev/null 2>&1 || return 1
  local userinfo="${url#mysql://}"
  userinfo="${userinfo%%@*}"
  local user="${userinfo%%:*}" pass=""
  [ "$userinfo" != "$user" ] && pass="${userinfo#*:}"
  MYSQL_PWD="$pass" mariadb --protocol=tcp -h "$db_host" -P "$db_port" -u "$user" \
    --connect-timeout=3 -e 'SELECT 1' >/dev/null 2>&1
}

port_open() {
  (exec 3<>"/dev/tcp/$db_host/$db_port") 2>/dev/null
}

ensure_mariadb() {
  if mysql_answers; then
    return 0
  fi
  if [ "$db_host" != "127.0.0.1" ] && [ "$db_host" != "localhost" ]; then
    log "no MySQL answers at $db_host:$db_port and it is not local: cannot provision it"
    return 1
  fi
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    log "installing MariaDB (mariadb-server)"
    apt_install mariadb-server mariadb-client
  fi
  if ! port_open; then
    log "starting MariaDB"
    if [ ! -d /var/lib/mysql/mysql ]; then
      as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    as_root mkdir -p /run/mysqld
    as_root chown mysql:mysql /run/mysqld
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do
      port_open && break
      sleep 0.5
    done
  fi
  if mysql_answers; then
    return 0
  fi
  # A fresh Debian install gives root unix-socket auth only: allow the test
  # user over TCP without a password (a test machine's server, bound to
  # loopback by Debian's default configuration).
  log "granting the test user TCP access to MariaDB"
  as_root mariadb -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
    FLUSH PRIVILEGES;" || true
  if mysql_answers; then
    return 0
  fi
  log "MariaDB is running but $url does not accept connections"
  return 1
}

ensure_tools() {
  local missing=()
  command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
  command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v useradd >/dev/null 2>&1 || missing+=(passwd)
  command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

# The install.ps1 tests parse the script with tree-sitter's PowerShell
# grammar (PowerShell itself is not packaged for Debian).
ensure_ps1_parser() {
  local venv=target/ps1-check
  if ! "$venv/bin/python" -c 'import tree_sitter, tree_sitter_powershell' >/dev/null 2>&1; then
    log "preparing the PowerShell parser for the installer tests"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q tree-sitter==0.26.1 tree-sitter-powershell==0.26.4
  fi
  SERVERSAN_TEST_PYTHON="$PWD/$venv/bin/python"
  export SERVERSAN_TEST_PYTHON
}

# The Windows agent is cross-built here and run under Wine.
ensure_windows_toolchain() {
  local missing=()
  command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
  command -v wine >/dev/null 2>&1 || missing+=(wine)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} for the Windows agent check"
    apt_install "${missing[@]}"
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
    rustup target add x86_64-pc-windows-gnu
  fi
}

ensure_tools
ensure_windows_toolchain
ensure_ps1_parser
ensure_mariadb
export SERVERSAN_TEST_MYSQL_URL="$url"

log "MariaDB answers at $db_host:$db_port; running cargo test"
cargo test --workspace "$@"

log "cross-building the agent for Windows and running it under Wine"
SERVERSAN_REQUIRE_WINDOWS=1 bash serversan-agent/tests/windows.sh
