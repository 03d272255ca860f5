#!/usr/bin/env bash
# ServerSan agent installer for Linux.
#
#   curl -fsSL https://mon.example/install.sh | sudo bash -s -- AUTH_CODE
#
# Usage:
#   install.sh AUTH_CODE [--server URL] [--binary PATH] [--systemd | --cron] [--root PREFIX]
#   install.sh --uninstall [--root PREFIX]
#
# Installs the agent so that it sends one report a minute, as the unprivileged
# system user `serversan`:
#   /usr/local/bin/serversan-agent     the agent (from --binary, else downloaded
#                                      from <server>/agent/linux-<arch>)
#   /etc/serversan/             0700   owned by serversan
#   /etc/serversan/auth.log     0600   the auth code
#   /etc/serversan/agent.toml   0600   server = "<URL>" (other settings are kept)
#   /var/lib/serversan/         0700   the agent's state and spool
#   /etc/cron.d/serversan-agent        with --cron (the default when cron exists)
#   /etc/systemd/system/serversan-agent.{service,timer}   with --systemd
#
# Running it again with a new code replaces the code (that is /reinstall in the
# bot) and updates the agent; without --systemd or --cron it keeps the schedule
# it finds. --uninstall removes everything listed above, the user included.
# --root PREFIX does all of it under PREFIX (for tests and images): nothing
# outside PREFIX is touched, nothing is started.
#
# The auth code is never printed. Everything below is defined first and run
# by the last line, so a download cut short runs nothing.

if [ -z "${BASH_VERSION:-}" ]; then
  echo "install.sh: run this script with bash, e.g. curl -fsSL URL/install.sh | sudo bash -s -- AUTH_CODE" >&2
  exit 1
fi
set -eu
set -o pipefail

# The ServerSan server that serves this script writes its public URL between
# the quotes of the next line; nothing else in the file is changed.
DEFAULT_SERVER=''

readonly AGENT_USER=serversan
readonly CONF_DIR=/etc/serversan
readonly AUTH_FILE=/etc/serversan/auth.log
readonly CONF_FILE=/etc/serversan/agent.toml
readonly STATE_DIR=/var/lib/serversan
readonly BIN_DIR=/usr/local/bin
readonly BIN_PATH=/usr/local/bin/serversan-agent
readonly CRON_DIR=/etc/cron.d
readonly CRON_FILE=/etc/cron.d/serversan-agent
readonly UNIT_DIR=/etc/systemd/system
readonly SERVICE_NAME=serversan-agent.service
readonly TIMER_NAME=serversan-agent.timer
readonly CONF_HEADER='# ServerSan agent settings (the installer sets "server"; other lines are kept).'

# Auth code: <key_id>.<secret>; key_id 8-32 letters or digits, secret
# base64url (no padding) of 32 to 128 bytes.
readonly CODE_RE='^[A-Za-z0-9]{8,32}\.[A-Za-z0-9_-]{43,172}$'
# Server URL: http(s), a host, an optional port and path; no query, no
# quotes, no spaces, nothing a shell or TOML would read specially.
readonly URL_RE='^https?://[]A-Za-z0-9._~:%[-][]A-Za-z0-9._~:/%[-]*$'

ROOT=""
CODE=""
SERVER=""
BINARY=""
MODE=""
UNINSTALL=0
TMP=""
BIN_TMP=""

say() { printf 'serversan: %s\n' "$*"; }
warn() { printf 'serversan: warning: %s\n' "$*" >&2; }
die() {
  printf 'serversan: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: install.sh AUTH_CODE [--server URL] [--binary PATH] [--systemd | --cron] [--root PREFIX]
       install.sh --uninstall [--root PREFIX]

  AUTH_CODE      the code the ServerSan bot gave for this server (/add or /reinstall)
  --server URL   the ServerSan server (default: the one this script came from,
                 else the one already configured)
  --binary PATH  install this agent binary instead of downloading it
  --cron         run the agent every minute from /etc/cron.d (default when cron exists)
  --systemd      run the agent every minute from a systemd timer
  --uninstall    remove the agent, its files, its schedule and its user
  --root PREFIX  install under PREFIX instead of / (nothing is started)
EOF
}

cleanup() {
  if [ -n "$TMP" ]; then
    rm -f -- "$TMP"
  fi
  if [ -n "$BIN_TMP" ]; then
    rm -f -- "$BIN_TMP"
  fi
}

parse_args() {
  while [ "$#" -gt 0 ]; do
    case $1 in
      --server | --binary | --root)
        [ "$#" -ge 2 ] || die "$1 needs a value"
        set_option "$1" "$2"
        shift 2
        ;;
      --server=* | --binary=* | --root=*)
        set_option "${1%%=*}" "${1#*=}"
        shift
        ;;
      --systemd | --cron)
        if [ -n "$MODE" ] && [ "$MODE" != "${1#--}" ]; then
          die "choose one of --systemd and --cron"
        fi
        MODE=${1#--}
        shift
        ;;
      --uninstall)
        UNINSTALL=1
        shift
        ;;
      -h | --help)
        usage
        exit 0
        ;;
      -*)
        usage >&2
        die "unknown option: $1"
        ;;
      *)
        # Never echo this argument: it is normally the auth code.
        [ -z "$CODE" ] || die "more than one auth code given"
        CODE=$1
        shift
        ;;
    esac
  done
}

set_option() {
  case $1 in
    --server) SERVER=$2 ;;
    --binary) BINARY=$2 ;;
    --root) ROOT=$2 ;;
  esac
}

valid_code() {
  local code=$1 secret
  [[ $code =~ $CODE_RE ]] || return 1
  # Base64 without padding never leaves a single character over.
  secret=${code#*.}
  [ $((${#secret} % 4)) -ne 1 ]
}

valid_url() {
  [ "${#1}" -le 2048 ] && [[ $1 =~ $URL_RE ]]
}

check_root_prefix() {
  [ -n "$ROOT" ] || return 0
  case $ROOT in
    /*) ;;
    *) die "--root must be an absolute path" ;;
  esac
  [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
  ROOT=${ROOT%/}
  while [ "${ROOT%/}" != "$ROOT" ]; do ROOT=${ROOT%/}; done
}

# The server URL from --server, else the preset, else the installed agent.toml.
resolve_server() {
  if [ -z "$SERVER" ]; then
    SERVER=$DEFAULT_SERVER
  fi
  if [ -z "$SERVER" ]; then
    SERVER=$(old_config | sed -n 's/^[[:space:]]*server[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
  fi
  [ -n "$SERVER" ] || die "no server URL: pass --server https://your.serversan.server"
  valid_url "$SERVER" || die "the server URL must look like https://host[:port][/path] (http also works), without quotes, spaces, query or fragment"
  while [ "${SERVER%/}" != "$SERVER" ]; do SERVER=${SERVER%/}; done
}

require_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  die "this installer must run as root: run it again with sudo, e.g. curl -fsSL <server>/install.sh | sudo bash -s -- <AUTH_CODE>"
}

systemd_running() {
  [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# cron or systemd: the flag, else what is already installed, else cron when
# it exists, else systemd when it runs.
resolve_mode() {
  if [ -z "$MODE" ]; then
    if [ -f "$ROOT$UNIT_DIR/$TIMER_NAME" ]; then
      MODE=systemd
    elif [ -f "$ROOT$CRON_FILE" ] || [ -d "$ROOT$CRON_DIR" ]; then
      MODE=cron
    elif systemd_running; then
      say "cron is not installed; using a systemd timer"
      MODE=systemd
    else
      die "neither cron ($CRON_DIR) nor systemd was found: install cron, or use --systemd"
    fi
  fi
  case $MODE in
    cron) [ -d "$ROOT$CRON_DIR" ] || die "cron is not installed ($CRON_DIR is missing): install cron, or use --systemd" ;;
    systemd) [ -d "$ROOT$UNIT_DIR" ] || die "systemd is not installed ($UNIT_DIR is missing): use --cron" ;;
  esac
}

linux_arch() {
  case $(uname -m) in
    x86_64 | amd64) echo x86_64 ;;
    aarch64 | arm64) echo aarch64 ;;
    armv7* | armv8l) echo armv7 ;;
    i386 | i486 | i586 | i686) echo i686 ;;
    riscv64) echo riscv64 ;;
    *) die "no ServerSan agent is built for $(uname -m); build it yourself and pass --binary PATH" ;;
  esac
}

is_elf() {
  [ -s "$1" ] && [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]
}

nologin_shell() {
  local shell
  for shell in /usr/sbin/nologin /sbin/nologin; do
    if [ -x "$shell" ]; then
      echo "$shell"
      return
    fi
  done
  echo /bin/false
}

# Field $1 (3 = uid, 4 = gid) of the agent user in the passwd file this
# install uses, so --root never consults the real system's users.
user_field() {
  [ -f "$ROOT/etc/passwd" ] || return 0
  awk -F: -v user="$AGENT_USER" -v field="$1" '$1 == user { print $field; exit }' "$ROOT/etc/passwd"
}

group_exists() {
  [ -f "$ROOT/etc/group" ] && grep -q "^$AGENT_USER:" "$ROOT/etc/group"
}

ensure_user() {
  if [ -n "$(user_field 3)" ]; then
    return
  fi
  if [ -n "$ROOT" ]; then
    useradd --prefix "$ROOT" --system --user-group --no-create-home --no-log-init \
      --home-dir /nonexistent --shell "$(nologin_shell)" --comment "ServerSan agent" "$AGENT_USER" ||
      die "could not create user $AGENT_USER under $ROOT (needs useradd --prefix, shadow 4.11 or later)"
  elif command -v useradd >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --no-log-init \
      --home-dir /nonexistent --shell "$(nologin_shell)" --comment "ServerSan agent" "$AGENT_USER"
  elif command -v adduser >/dev/null 2>&1; then
    # BusyBox (Alpine).
    group_exists || addgroup -S "$AGENT_USER"
    adduser -S -D -H -h /nonexistent -s "$(nologin_shell)" -G "$AGENT_USER" -g "ServerSan agent" "$AGENT_USER"
  else
    die "cannot create user $AGENT_USER: neither useradd nor adduser exists"
  fi
  [ -n "$(user_field 3)" ] || die "user $AGENT_USER was not created"
  say "created system user $AGENT_USER"
}

remove_user() {
  if [ -n "$(user_field 3)" ]; then
    if [ -n "$ROOT" ]; then
      userdel --prefix "$ROOT" "$AGENT_USER"
    elif command -v userdel >/dev/null 2>&1; then
      # Exit status 8: an agent run is still going; remove the user anyway.
      userdel "$AGENT_USER" || userdel --force "$AGENT_USER"
    else
      deluser "$AGENT_USER"
    fi
  fi
  # userdel keeps the group when the system's login.defs says so (and under
  # --root, where it reads no login.defs).
  if group_exists; then
    if [ -n "$ROOT" ]; then
      groupdel --prefix "$ROOT" "$AGENT_USER"
    elif command -v groupdel >/dev/null 2>&1; then
      groupdel "$AGENT_USER"
    else
      delgroup "$AGENT_USER"
    fi
  fi
}

# The installed agent.toml, when it is a plain file owned by root or the
# agent user. The agent user owns /etc/serversan, so a link or a FIFO planted
# there must not make this root script read (and copy) another file.
old_config() {
  local file=$ROOT$CONF_FILE owner
  if [ -L "$file" ] || [ ! -f "$file" ]; then
    return 0
  fi
  owner=$(stat -c %u -- "$file")
  if [ "$owner" = 0 ] || [ "$owner" = "$(user_field 3)" ]; then
    cat -- "$file"
  fi
}

# Writes stdin to $1 with mode $2 and owner $3 (uid:gid): a temporary file in
# the same directory, renamed over the target, so no reader ever sees half a
# file and the old one stays until the new one is complete. Whatever else
# sits at the target (a directory, a link) is removed rather than followed.
write_file() {
  local dest=$1 mode=$2 owner=$3
  TMP=$(mktemp "${dest%/*}/.${dest##*/}.XXXXXX")
  cat >"$TMP"
  chown "$owner" "$TMP"
  chmod "$mode" "$TMP"
  if [ -L "$dest" ] || [ -d "$dest" ]; then
    rm -rf -- "$dest"
  fi
  mv -f -- "$TMP" "$dest"
  TMP=""
}

make_dir() {
  local dir=$1 mode=$2 owner=$3
  mkdir -p -- "$dir"
  chown "$owner" "$dir"
  chmod "$mode" "$dir"
}

write_auth_code() {
  # printf is a builtin: the code never shows in a process listing.
  printf '%s\n' "$CODE" | write_file "$ROOT$AUTH_FILE" 0600 "$1"
}

# Sets `server` and keeps every other line a user added (a CA file, say).
write_config() {
  local owner=$1 old
  old=$(old_config)
  {
    echo "$CONF_HEADER"
    printf 'server = "%s"\n' "$SERVER"
    if [ -n "$old" ]; then
      printf '%s\n' "$old" | awk -v header="$CONF_HEADER" '
        /^[[:space:]]*\[/ { in_table = 1 }
        !in_table && /^[[:space:]]*server[[:space:]]*=/ { next }
        $0 == header { next }
        { print }'
    fi
  } | write_file "$ROOT$CONF_FILE" 0600 "$owner"
}

# Puts the agent binary in a temporary file beside its destination, checked,
# before anything else is changed: a failed download changes nothing.
fetch_binary() {
  local url
  mkdir -p -- "$ROOT$BIN_DIR"
  BIN_TMP=$(mktemp "$ROOT$BIN_DIR/.serversan-agent.XXXXXX")
  if [ -n "$BINARY" ]; then
    cp -- "$BINARY" "$BIN_TMP"
  else
    url="$SERVER/agent/linux-$(linux_arch)"
    say "downloading the agent from $url"
    if command -v curl >/dev/null 2>&1; then
      curl -fsSL --proto '=https,http' --connect-timeout 15 --max-time 300 --retry 2 -o "$BIN_TMP" "$url" </dev/null ||
        die "could not download the agent from $url (or pass --binary PATH); nothing was changed"
    elif command -v wget >/dev/null 2>&1; then
      wget -q -T 60 -O "$BIN_TMP" "$url" </dev/null ||
        die "could not download the agent from $url (or pass --binary PATH); nothing was changed"
    else
      die "neither curl nor wget is installed: install one, or pass --binary PATH"
    fi
  fi
  is_elf "$BIN_TMP" || die "the agent binary is not a Linux executable (empty, or not ELF); nothing was changed"
  chown 0:0 "$BIN_TMP"
  chmod 0755 "$BIN_TMP"
}

place_binary() {
  mv -f -- "$BIN_TMP" "$ROOT$BIN_PATH"
  BIN_TMP=""
}

# The second of each minute this host reports at, 0 to 59, from its key id
# (sent with every report, so nothing secret): the same on every run with
# one code, and spread evenly over a fleet. Why: cron and the timer would
# otherwise start every host at second 0, and a fleet of 100,000 would
# send its reports in the same few seconds each minute instead of about
# 1,700 a second. A fixed second (not a random delay per run) keeps each
# host's reports 60 s apart, as the server's interval check expects.
report_second() {
  local sum
  sum=$(printf '%s' "${CODE%%.*}" | cksum)
  echo $(( ${sum%% *} % 60 ))
}

cron_entry() {
  local second
  second=$(report_second)
  cat <<EOF
# ServerSan agent: one report a minute, as the unprivileged user $AGENT_USER,
# at second $second of the minute (see install.sh).
# Written by install.sh; "install.sh --uninstall" removes it.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
MAILTO=""
* * * * * $AGENT_USER sleep $second; exec $BIN_PATH report >/dev/null 2>&1
EOF
}

service_unit() {
  cat <<EOF
# Written by the ServerSan installer; "install.sh --uninstall" removes it.
[Unit]
Description=ServerSan agent: send one report to the ServerSan server
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User=$AGENT_USER
Group=$AGENT_USER
ExecStart=$BIN_PATH report
TimeoutStartSec=120
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ReadWritePaths=$STATE_DIR
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
EOF
}

timer_unit() {
  cat <<EOF
# Written by the ServerSan installer; "install.sh --uninstall" removes it.
[Unit]
Description=ServerSan agent: one report a minute

[Timer]
OnCalendar=*-*-* *:*:$(printf '%02d' "$(report_second)")
AccuracySec=1s
Unit=$SERVICE_NAME

[Install]
WantedBy=timers.target
EOF
}

remove_cron() {
  rm -f -- "$ROOT$CRON_FILE"
}

remove_systemd() {
  if systemd_running && [ -f "$UNIT_DIR/$TIMER_NAME" ]; then
    systemctl disable --now "$TIMER_NAME" >/dev/null 2>&1 || true
    systemctl stop "$SERVICE_NAME" >/dev/null 2>&1 || true
  fi
  local had_units=0
  if [ -e "$ROOT$UNIT_DIR/$TIMER_NAME" ] || [ -e "$ROOT$UNIT_DIR/$SERVICE_NAME" ]; then
    had_units=1
  fi
  rm -f -- "$ROOT$UNIT_DIR/$TIMER_NAME" "$ROOT$UNIT_DIR/$SERVICE_NAME" \
    "$ROOT$UNIT_DIR/timers.target.wants/$TIMER_NAME"
  if [ "$had_units" -eq 1 ] && systemd_running; then
    systemctl daemon-reload || true
  fi
}

schedule() {
  if [ "$MODE" = cron ]; then
    remove_systemd
    cron_entry | write_file "$ROOT$CRON_FILE" 0644 0:0
    say "scheduled every minute in $CRON_FILE"
    return
  fi
  remove_cron
  service_unit | write_file "$ROOT$UNIT_DIR/$SERVICE_NAME" 0644 0:0
  timer_unit | write_file "$ROOT$UNIT_DIR/$TIMER_NAME" 0644 0:0
  if systemd_running; then
    systemctl daemon-reload
    systemctl enable --now "$TIMER_NAME" >/dev/null 2>&1 ||
      die "systemctl could not enable $TIMER_NAME"
    say "scheduled every minute by $TIMER_NAME"
  elif [ -n "$ROOT" ]; then
    say "wrote $TIMER_NAME under $ROOT (not enabled)"
  else
    warn "systemd is not running: $TIMER_NAME is written but not enabled; enable it with: systemctl enable --now $TIMER_NAME"
  fi
}

# Runs the agent once as its user, so the user sees at once whether the
# server accepts this host.
first_report() {
  local status=0
  say "sending a first report to $SERVER"
  if command -v runuser >/dev/null 2>&1; then
    runuser -u "$AGENT_USER" -- "$BIN_PATH" report </dev/null || status=$?
  else
    su -s /bin/sh "$AGENT_USER" -c "exec $BIN_PATH report" </dev/null || status=$?
  fi
  if [ "$status" -eq 0 ]; then
    say "the server accepted the first report: this host now reports every minute"
  else
    warn "the first report did not reach the server (exit status $status, see above); the agent tries again every minute"
  fi
}

install_agent() {
  local uid gid owner
  fetch_binary
  ensure_user
  uid=$(user_field 3)
  gid=$(user_field 4)
  owner="$uid:$gid"
  # Root holds the directory while writing it, so the agent user cannot swap
  # files under this script; the agent user gets it back at the end.
  make_dir "$ROOT$CONF_DIR" 0700 0:0
  write_auth_code "$owner"
  write_config "$owner"
  chown "$owner" "$ROOT$CONF_DIR"
  mkdir -p -- "$ROOT/var/lib"
  make_dir "$ROOT$STATE_DIR" 0700 "$owner"
  place_binary
  schedule
  say "installed the ServerSan agent for $SERVER"
  if [ -z "$ROOT" ]; then
    first_report
  fi
}

uninstall_agent() {
  remove_systemd
  remove_cron
  rm -f -- "$ROOT$BIN_PATH"
  rm -rf -- "$ROOT$CONF_DIR" "$ROOT$STATE_DIR"
  remove_user
  say "removed the ServerSan agent, its files, its schedule and its user"
}

main() {
  parse_args "$@"
  if [ "$UNINSTALL" -eq 1 ]; then
    require_root
    check_root_prefix
    uninstall_agent
    return
  fi
  [ -n "$CODE" ] || {
    usage >&2
    die "the auth code is missing: the bot gives it with /add or /reinstall"
  }
  valid_code "$CODE" || die "that is not a ServerSan auth code (KEY.SECRET as the bot gave it); nothing was changed"
  if [ -n "$BINARY" ]; then
    [ -f "$BINARY" ] || die "--binary $BINARY is not a file; nothing was changed"
    is_elf "$BINARY" || die "--binary $BINARY is not a Linux executable (ELF); nothing was changed"
  fi
  if [ -z "$ROOT" ] && [ "$(uname -s)" != Linux ]; then
    die "this installer is for Linux (use install.ps1 on Windows)"
  fi
  require_root
  check_root_prefix
  resolve_server
  resolve_mode
  umask 077
  trap cleanup EXIT
  install_agent
}

main "$@"
