#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL cluster for the tests.
#
#   scripts/postgres.sh start   # prints the superuser URL on stdout
#   scripts/postgres.sh url     # prints the URL again while the cluster runs
#   scripts/postgres.sh stop    # stops the cluster and deletes its files
#   scripts/postgres.sh pause   # stops the server, keeping its files, for outage tests
#   scripts/postgres.sh resume  # starts a paused server again on the same port
#
# Typical use: TOKEND_TEST_POSTGRES_URL="$(scripts/postgres.sh start)".
#
# The cluster lives in a new directory under ${TMPDIR:-/tmp}. It listens on
# 127.0.0.1 only, on a free port, with its Unix socket in that directory, and
# trusts every connection without a password: any local user who finds the
# port can connect as superuser while it runs. Its location is kept in the
# state file .tools/postgres.state (TOKEND_PG_STATE overrides the path), so
# `stop` works from another shell. Progress and errors go to stderr.
#
# initdb and pg_ctl refuse to run as root, so as root the server runs as the
# `postgres` OS user that Debian's postgresql package creates.
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

STATE_FILE="${TOKEND_PG_STATE:-$TOKEND_ROOT/.tools/postgres.state}"

# Ports are drawn from 20000-31999: above the usual service ports and below
# Linux's default ephemeral range (32768-60999), where outgoing connections
# could take them.
PORT_BASE=20000
PORT_SPAN=12000
MAX_START_ATTEMPTS=5

# Seconds to wait for the server to accept connections, and to shut down.
START_TIMEOUT=60
STOP_TIMEOUT=60

log() {
    printf 'postgres.sh: %s\n' "$*" >&2
}

fail() {
    log "error: $*"
    exit 1
}

usage() {
    printf 'usage: %s start|stop|url|pause|resume\n' "$0" >&2
    exit 2
}

# Runs a command as the OS user that owns the cluster, from the cluster
# directory, because the caller's working directory may not be readable by
# that user.
as_owner() {
    if [[ "$PG_OS_USER" == "$(id -un)" ]]; then
        (cd "$PG_DIR" && "$@")
    else
        (cd "$PG_DIR" && runuser -u "$PG_OS_USER" -- "$@")
    fi
}

choose_os_user() {
    if [[ "$(id -u)" -ne 0 ]]; then
        PG_OS_USER="$(id -un)"
        return
    fi
    id -u postgres >/dev/null 2>&1 ||
        fail "running as root, but the OS user 'postgres' does not exist; install Debian's postgresql package or run as a non-root user"
    command -v runuser >/dev/null 2>&1 || fail "running as root, but runuser (util-linux) is not installed"
    PG_OS_USER=postgres
}

load_state() {
    [[ -f "$STATE_FILE" ]] || return 1
    # The state file is written by save_state below, with values quoted by printf %q.
    # shellcheck source=/dev/null
    . "$STATE_FILE"
}

save_state() {
    mkdir -p "$(dirname "$STATE_FILE")"
    {
        printf 'PG_DIR=%q\n' "$PG_DIR"
        printf 'PG_BINDIR=%q\n' "$PG_BINDIR"
        printf 'PG_OS_USER=%q\n' "$PG_OS_USER"
        printf 'PG_PORT=%q\n' "$PG_PORT"
        printf 'PG_URL=%q\n' "$PG_URL"
    } >"$STATE_FILE"
}

server_running() {
    [[ -d "$PG_DIR/data" ]] && as_owner "$PG_BINDIR/pg_ctl" status --pgdata="$PG_DIR/data" >/dev/null 2>&1
}

# Deletes the cluster directory. The name check guards against a damaged
# state file pointing rm -rf somewhere else.
remove_cluster_dir() {
    case "$PG_DIR" in
        */tokend-pg.*) ;;
        *) fail "refusing to delete '$PG_DIR': not a directory made by this script" ;;
    esac
    if [[ -d "$PG_DIR" ]]; then
        rm -rf -- "$PG_DIR"
    fi
}

port_in_use() {
    # A successful connect means something listens there already.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_free_port() {
    local attempt port
    for attempt in $(seq 1 50); do
        port=$((PORT_BASE + (RANDOM * 32768 + RANDOM) % PORT_SPAN))
        if ! port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    fail "found no free port in $PORT_BASE-$((PORT_BASE + PORT_SPAN - 1)) after $attempt tries"
}

init_cluster() {
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tokend-pg.XXXXXXXX")"
    # Remove the half-made cluster if any later step of start fails.
    trap 'cleanup_failed_start' EXIT
    if [[ "$PG_OS_USER" != "$(id -un)" ]]; then
        chown "$PG_OS_USER:" "$PG_DIR"
        runuser -u "$PG_OS_USER" -- test -w "$PG_DIR" ||
            fail "the OS user $PG_OS_USER cannot write to $PG_DIR; set TMPDIR to a directory that user can reach, such as /tmp"
    fi

    if ! as_owner "$PG_BINDIR/initdb" --pgdata="$PG_DIR/data" --username=postgres \
        --auth=trust --encoding=UTF8 --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        tail -n 20 "$PG_DIR/initdb.log" >&2
        fail "initdb failed; output above"
    fi

    # fsync, full_page_writes and synchronous_commit are off to save a disk
    # flush on every commit. A crash may then corrupt the cluster, which is
    # acceptable only because the cluster is deleted after the run.
    # max_connections is above the default of 100 because each test
    # connects to its own database, and tests run in parallel.
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF

# Settings for a throwaway test cluster, added by scripts/postgres.sh.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 200
EOF
}

cleanup_failed_start() {
    local status=$?
    if [[ $status -ne 0 && -n "${PG_DIR:-}" ]]; then
        if server_running; then
            as_owner "$PG_BINDIR/pg_ctl" stop --pgdata="$PG_DIR/data" --mode=immediate --wait >/dev/null 2>&1 || true
        fi
        remove_cluster_dir
        rm -f -- "$STATE_FILE"
    fi
    exit "$status"
}

# Starts the server on a free port, trying another port when the chosen one
# was taken between the check and the bind.
start_server() {
    local attempt
    for attempt in $(seq 1 "$MAX_START_ATTEMPTS"); do
        PG_PORT="$(pick_free_port)"
        if as_owner "$PG_BINDIR/pg_ctl" start --pgdata="$PG_DIR/data" --log="$PG_DIR/server.log" \
            --options="-p $PG_PORT" --wait --timeout="$START_TIMEOUT" >"$PG_DIR/pg_ctl.log" 2>&1; then
            return 0
        fi
        if server_running; then
            # pg_ctl timed out, but the server is still starting: stop it
            # rather than leave it behind.
            as_owner "$PG_BINDIR/pg_ctl" stop --pgdata="$PG_DIR/data" --mode=immediate --wait >/dev/null 2>&1 || true
            tail -n 20 "$PG_DIR/server.log" >&2
            fail "server did not accept connections within ${START_TIMEOUT}s; server log above"
        fi
        if ! grep -qE 'could not bind|Address already in use|could not create any TCP/IP sockets' "$PG_DIR/server.log" 2>/dev/null; then
            cat "$PG_DIR/pg_ctl.log" >&2
            tail -n 20 "$PG_DIR/server.log" >&2 2>/dev/null || true
            fail "pg_ctl start failed; output above"
        fi
        log "port $PG_PORT is taken, trying another (attempt $attempt of $MAX_START_ATTEMPTS)"
        : >"$PG_DIR/server.log"
    done
    fail "could not start the server after $MAX_START_ATTEMPTS ports were taken"
}

# pg_ctl --wait reads the server's state from postmaster.pid. This confirms
# that the TCP listener the tests use accepts connections too.
wait_for_tcp() {
    local attempt
    [[ -x "$PG_BINDIR/pg_isready" ]] || return 0
    for attempt in $(seq 1 50); do
        if "$PG_BINDIR/pg_isready" --host=127.0.0.1 --port="$PG_PORT" --username=postgres \
            --dbname=postgres --timeout=2 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    fail "server on 127.0.0.1:$PG_PORT did not answer pg_isready after $attempt tries"
}

cmd_start() {
    if load_state; then
        if server_running; then
            fail "a cluster already runs at $PG_URL (state in $STATE_FILE); run '$0 stop' first"
        fi
        log "removing stale cluster $PG_DIR left by an earlier run"
        remove_cluster_dir
        rm -f -- "$STATE_FILE"
    fi

    PG_BINDIR="$(tokend_pg_bindir)" ||
        fail "initdb and pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin; run scripts/install-tools.sh"
    choose_os_user
    init_cluster
    start_server
    wait_for_tcp

    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    save_state
    trap - EXIT
    log "started PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{ print $3 }') in $PG_DIR as OS user $PG_OS_USER, listening on 127.0.0.1:$PG_PORT"
    printf '%s\n' "$PG_URL"
}

cmd_stop() {
    if ! load_state; then
        log "no cluster recorded in $STATE_FILE; nothing to stop"
        return 0
    fi
    if server_running; then
        if ! as_owner "$PG_BINDIR/pg_ctl" stop --pgdata="$PG_DIR/data" --mode=fast \
            --wait --timeout="$STOP_TIMEOUT" >/dev/null 2>&1; then
            # Fast shutdown waits for running transactions to roll back, but
            # immediate mode ends the server processes at once.
            log "fast shutdown did not finish within ${STOP_TIMEOUT}s; using immediate shutdown"
            as_owner "$PG_BINDIR/pg_ctl" stop --pgdata="$PG_DIR/data" --mode=immediate \
                --wait --timeout="$STOP_TIMEOUT" >/dev/null 2>&1 ||
                fail "could not stop the server in $PG_DIR; its state stays in $STATE_FILE"
        fi
    fi
    remove_cluster_dir
    rm -f -- "$STATE_FILE"
    log "stopped the cluster on 127.0.0.1:$PG_PORT and deleted $PG_DIR"
}

# Stops the server but keeps its files and state, so that tests can make
# the database unreachable and bring it back on the same port.
cmd_pause() {
    load_state || fail "no cluster recorded in $STATE_FILE; run '$0 start' first"
    server_running || fail "the cluster in $PG_DIR is not running"
    as_owner "$PG_BINDIR/pg_ctl" stop --pgdata="$PG_DIR/data" --mode=fast \
        --wait --timeout="$STOP_TIMEOUT" >/dev/null 2>&1 ||
        fail "could not stop the server in $PG_DIR"
    log "paused the cluster on 127.0.0.1:$PG_PORT"
}

# Starts a paused server again on its recorded port.
cmd_resume() {
    load_state || fail "no cluster recorded in $STATE_FILE; run '$0 start' first"
    server_running && fail "the cluster in $PG_DIR is already running"
    as_owner "$PG_BINDIR/pg_ctl" start --pgdata="$PG_DIR/data" --log="$PG_DIR/server.log" \
        --options="-p $PG_PORT" --wait --timeout="$START_TIMEOUT" >"$PG_DIR/pg_ctl.log" 2>&1 ||
        fail "could not restart the server on port $PG_PORT; see $PG_DIR/server.log"
    wait_for_tcp
    log "resumed the cluster on 127.0.0.1:$PG_PORT"
}

cmd_url() {
    load_state || fail "no cluster recorded in $STATE_FILE; run '$0 start' first"
    server_running || fail "the cluster in $PG_DIR is not running; run '$0 stop' and then '$0 start'"
    printf '%s\n' "$PG_URL"
}

[[ $# -eq 1 ]] || usage
case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) cmd_url ;;
    pause) cmd_pause ;;
    resume) cmd_resume ;;
    *) usage ;;
esac
