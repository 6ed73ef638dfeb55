#!/usr/bin/env bash
# Measures how fast a revocation becomes visible on every replica of three
# tokend servers that share one PostgreSQL database.
#
#   bench/revocation.sh                                # builds the release binary first
#   bench/revocation.sh --binary target/release/tokend --rounds 100
#
# The script starts a throwaway PostgreSQL cluster with scripts/postgres.sh,
# runs `tokend migrate`, creates an admin token with `tokend admin
# create-token` and starts three `tokend serve` replicas on 127.0.0.1 that
# share the database and one hashing key. Then it runs the Go program in
# bench/revocation in three phases:
#
#   notify        ROUNDS rounds with every replica listening for revocation
#                 notices. Target: replicas 2 and 3 return REVOKED within
#                 100 ms at p99.
#   listener-cut  CUT_ROUNDS rounds in which the LISTEN connections of
#                 replicas 2 and 3 are ended with pg_terminate_backend right
#                 before each Revoke, so those replicas miss its notice.
#                 Target: they return REVOKED within the cache TTL (10 s).
#                 tokend reconnects its listener 200 ms after losing it and
#                 then clears its whole cache, so this phase measures the
#                 reconnect, not the TTL.
#   ttl           TTL_ROUNDS rounds in which replicas 2 and 3 cannot reach
#                 the database, so that only the cache TTL ends their
#                 cached VALID response. Right before each Revoke, the
#                 database stops accepting connections (ALTER DATABASE ...
#                 ALLOW_CONNECTIONS false, which rejects superusers too)
#                 and every connection of replicas 2 and 3 is ended, LISTEN
#                 connections included. Once the entry expires, the lookup
#                 needs the database, so the replicas return the error
#                 UNAVAILABLE rather than REVOKED, and the phase counts
#                 these errors instead of failing. Target: replicas 2 and 3
#                 stop returning VALID within the cache TTL (10 s). They
#                 are polled every 10 ms until the round's deadline. Then
#                 the database accepts connections again, both listeners
#                 reconnect, and both replicas must return REVOKED.
#
# Each round generates a token on replica 1 and validates it on all three
# replicas, so that each one caches it. Then it revokes the token on
# replica 1, checks that replica 1 returns REVOKED at once, and polls
# Validate on replicas 2 and 3 until each returns REVOKED. The script
# prints one table per phase. It exits 1 when any round fails, which is one
# of three cases:
#   - a failed call, except UNAVAILABLE from replicas 2 and 3 while the ttl
#     phase keeps them off the database;
#   - an unexpected Validate result;
#   - a replica still returning VALID at the round's deadline.
# Missed targets are reported, not counted as failures.
#
# Options (each also has an environment variable):
#   --binary PATH       BENCH_TOKEND_BINARY     measure this tokend build instead
#                                               of building target/release/tokend
#   --rounds N          REVOCATION_ROUNDS       notify rounds, default 300
#   --cut-rounds N      REVOCATION_CUT_ROUNDS   listener-cut rounds, default 20
#   --ttl-rounds N      REVOCATION_TTL_ROUNDS   ttl rounds, default 5; each one
#                                               takes about 13 s
#   --output-dir DIR    REVOCATION_OUTPUT_DIR   where the tables, JSON and server
#                                               logs go (default: a new directory
#                                               under ${TMPDIR:-/tmp})
#
# Needs Go 1.26 or newer, jq, curl, and the server programs and psql from
# Debian's postgresql package. Every server listens on 127.0.0.1 only. When
# the script exits, it lets the database accept connections again, stops
# the replicas by PID and the cluster with `scripts/postgres.sh stop`.
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
# shellcheck source=bench/lib.sh
. "$TOKEND_ROOT/bench/lib.sh"
cd "$TOKEND_ROOT"

BINARY="${BENCH_TOKEND_BINARY:-}"
ROUNDS="${REVOCATION_ROUNDS:-300}"
CUT_ROUNDS="${REVOCATION_CUT_ROUNDS:-20}"
TTL_ROUNDS="${REVOCATION_TTL_ROUNDS:-5}"
OUTPUT_DIR="${REVOCATION_OUTPUT_DIR:-}"

REPLICAS=3
# Passed to every replica explicitly, because the listener-cut and ttl
# targets are this TTL.
CACHE_TTL_SECONDS=10
NOTIFY_TARGET_P99=100ms
# A replica that missed the notice must see the revoke when its cache entry
# expires. The two extra seconds leave room for the Validate calls around
# that moment, so only a replica that outlives the TTL by far fails.
CUT_DEADLINE_SECONDS=$((CACHE_TTL_SECONDS + 2))
# The ttl phase polls for about the whole TTL, so a pause between calls
# keeps its CPU use low. 10 ms is small next to the 10 s target.
TTL_POLL_INTERVAL=10ms
DATABASE_NAME=tokend_revocation
# The Go program bounds each round itself. This limit bounds the whole run
# in case a call hangs past its own timeouts.
SECONDS_PER_ROUND_LIMIT=60

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --binary) BINARY="${2:?--binary needs a value}"; shift ;;
        --rounds) ROUNDS="${2:?--rounds needs a value}"; shift ;;
        --cut-rounds) CUT_ROUNDS="${2:?--cut-rounds needs a value}"; shift ;;
        --ttl-rounds) TTL_ROUNDS="${2:?--ttl-rounds needs a value}"; shift ;;
        --output-dir) OUTPUT_DIR="${2:?--output-dir needs a value}"; shift ;;
        -h | --help) usage ;;
        *) printf 'revocation: unknown argument %q\n' "$1" >&2; usage ;;
    esac
    shift
done

log() {
    printf 'revocation %s: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

fail() {
    log "error: $*"
    exit 1
}

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ && "$ROUNDS" -le 10000 ]] ||
    fail "invalid --rounds '$ROUNDS'; use a whole number from 1 to 10000"
[[ "$CUT_ROUNDS" =~ ^[1-9][0-9]*$ && "$CUT_ROUNDS" -le 1000 ]] ||
    fail "invalid --cut-rounds '$CUT_ROUNDS'; use a whole number from 1 to 1000"
[[ "$TTL_ROUNDS" =~ ^[1-9][0-9]*$ && "$TTL_ROUNDS" -le 100 ]] ||
    fail "invalid --ttl-rounds '$TTL_ROUNDS'; use a whole number from 1 to 100"
command -v go >/dev/null 2>&1 || fail "go not found; install Go 1.26 or newer"
command -v jq >/dev/null 2>&1 || fail "jq not found; install it (Debian: apt-get install jq)"
command -v curl >/dev/null 2>&1 || fail "curl not found; install it (Debian: apt-get install curl)"
PG_BINDIR="$(tokend_pg_bindir)" || fail "PostgreSQL not found; run scripts/install-tools.sh"
[[ -x "$PG_BINDIR/psql" ]] || fail "psql missing from $PG_BINDIR; install Debian's postgresql package"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tokend-revocation.XXXXXXXX")"
if [[ -z "$OUTPUT_DIR" ]]; then
    OUTPUT_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tokend-revocation-reports.XXXXXXXX")"
fi
mkdir -p "$OUTPUT_DIR"
# A state file of its own, so a PostgreSQL cluster that someone else
# started is left alone.
export TOKEND_PG_STATE="$WORK_DIR/postgres.state"
POSTGRES_STARTED=false
DATABASE_CREATED=false
FAILURES=0

# Stops the replicas and the PostgreSQL cluster that this script started,
# and deletes the work directory with the database, the key and the admin
# token. Reports in OUTPUT_DIR stay.
cleanup() {
    local status=$?
    # The ttl phase rejects new connections until its -after-revoke command
    # runs, which an interrupt or a failed round can skip. The replicas
    # need connections to write their last-used times while they stop.
    if [[ "$DATABASE_CREATED" == true ]]; then
        PGCONNECT_TIMEOUT=10 psql_run --dbname="$PG_ADMIN_URL" \
            -c "ALTER DATABASE $DATABASE_NAME ALLOW_CONNECTIONS true" >/dev/null ||
            log "could not let $DATABASE_NAME accept connections again"
    fi
    stop_all_tokends
    if [[ "$POSTGRES_STARTED" == true ]]; then
        scripts/postgres.sh stop || log "could not stop PostgreSQL; state file $TOKEND_PG_STATE"
    fi
    rm -rf -- "$WORK_DIR"
    log "reports in $OUTPUT_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Build

prepare_tokend "$BINARY" "$WORK_DIR"
log "building bench/revocation"
(cd bench/revocation && go build -o "$WORK_DIR/revocation" .)

# ---------------------------------------------------------------------------
# Database, key, admin token and replicas

PG_ADMIN_URL="$(scripts/postgres.sh start)"
POSTGRES_STARTED=true
psql_run --dbname="$PG_ADMIN_URL" -c "CREATE DATABASE $DATABASE_NAME" >/dev/null
DATABASE_CREATED=true
DATABASE_URL="${PG_ADMIN_URL%/*}/$DATABASE_NAME"
KEY_FILE="$WORK_DIR/hashing.key"
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$KEY_FILE")
# Every replica and every admin command must hash with the same key, and an
# external database has no data directory of its own to keep it in.
STORAGE_ARGS=(--data-dir "$WORK_DIR/data" --hashing-key-file "$KEY_FILE")

timeout 120 "$TOKEND" migrate --database-url "$DATABASE_URL" "${STORAGE_ARGS[@]}" 2>>"$OUTPUT_DIR/admin.log" ||
    fail "tokend migrate failed; see $OUTPUT_DIR/admin.log"
ADMIN_TOKEN="$(timeout 60 "$TOKEND" admin create-token --owner bench-admin --name "revocation benchmark" \
    --scope tokens:admin --ttl 1d --output json --database-url "$DATABASE_URL" "${STORAGE_ARGS[@]}" \
    2>>"$OUTPUT_DIR/admin.log" | jq -r .secret)"
[[ "$ADMIN_TOKEN" == tkn_* ]] || fail "creating the admin token failed; see $OUTPUT_DIR/admin.log"

# Each replica connects under its own application_name, which is how the
# listener cut finds the LISTEN connections of replicas 2 and 3 in
# pg_stat_activity.
ADDRESSES=()
for ((replica = 1; replica <= REPLICAS; replica++)); do
    start_tokend "replica-$replica" "$OUTPUT_DIR/replica-$replica.log" "$ADMIN_TOKEN" "$ADMIN_TOKEN" \
        --database-url "$DATABASE_URL?application_name=tokend-replica-$replica" "${STORAGE_ARGS[@]}" \
        --cache-ttl "${CACHE_TTL_SECONDS}s"
    ADDRESSES+=("127.0.0.1:$STARTED_PORT")
done
REPLICA_LIST="$(IFS=,; printf '%s' "${ADDRESSES[*]}")"

# ---------------------------------------------------------------------------
# The listener cut and the database cut-off

# The Go program runs this script before each Revoke of the listener-cut
# phase (mode "listeners"), and around each Revoke of the ttl phase ("isolate"
# before, "restore" after).
#
# "listeners" signals both listeners in one statement, so that both replicas
# lose their listener at the same moment, and returns once both backends
# have exited, so that the Revoke's notice cannot reach them.
# pg_terminate_backend with a timeout would wait in steps of 100 ms, one
# backend after the other, which would put the two cuts about 100 ms apart.
#
# "isolate" ends every connection of replicas 2 and 3, not only the
# listeners, because tokend's listener takes its connection from the
# replica's query pool (PgListener::connect_with in sqlx 0.9.1). In a
# 3-round trial that ended only the listeners while new connections were
# rejected, the replicas ran LISTEN again on an already open pooled
# connection, mostly within 200 ms, and cleared their cache, so those
# rounds measured that reconnect again.
#
# NOTE: no phase measures a replica that returns REVOKED because its cache
# entry expired. A replica that can still query the database can also reconnect
# its listener, which clears its cache, and a replica that cannot query
# returns UNAVAILABLE once the entry expires.
CUT_SCRIPT="$WORK_DIR/cut-listeners.sh"
cat >"$CUT_SCRIPT" <<'EOF'
#!/usr/bin/env bash
# Cuts replicas 2 and 3 off from revocation notices, or lets them back.
# bench/revocation.sh writes this file and sets CUT_PSQL, CUT_ADMIN_URL (the
# maintenance database, which accepts connections throughout),
# CUT_DATABASE and CUT_DATABASE_URL.
#
#   cut-listeners.sh listeners   end the LISTEN connections of replicas 2 and 3
#   cut-listeners.sh isolate     make the database reject new connections, then
#                                end every connection of replicas 2 and 3
#   cut-listeners.sh restore     make the database accept connections again and
#                                wait until replicas 2 and 3 listen again
set -euo pipefail

# Runs psql on the database URL $1 with the remaining arguments.
psql_on() {
    local url="$1"
    shift
    PGOPTIONS='-c client_min_messages=warning' "$CUT_PSQL" --no-psqlrc --quiet --set ON_ERROR_STOP=1 \
        --tuples-only --no-align --dbname="$url" "$@"
}

replicas_sql="SELECT pid FROM pg_stat_activity WHERE datname = '$CUT_DATABASE'
    AND application_name IN ('tokend-replica-2', 'tokend-replica-3')"
listeners_sql="$replicas_sql AND query LIKE 'LISTEN%'"

# Waits until replicas 2 and 3 each have a LISTEN connection, checking up
# to $1 times about 50 ms apart.
wait_for_listeners() {
    local tries="$1" attempt listeners
    for attempt in $(seq 1 "$tries"); do
        listeners="$(psql_on "$CUT_ADMIN_URL" -c "SELECT count(*) FROM ($listeners_sql) AS listeners")"
        [[ "$listeners" == 2 ]] && return 0
        sleep 0.05
    done
    printf 'cut-listeners: found %s LISTEN connections of replicas 2 and 3 after %s tries; want 2\n' "$listeners" "$attempt" >&2
    return 1
}

# Ends the backends that the query $1 selects and waits until they have
# exited. $2 is a regular expression for the comma-separated process ids
# that must have been signaled.
terminate() {
    local query="$1" expected="$2" pids attempt remaining
    # MATERIALIZED makes the filter pick the rows before pg_terminate_backend
    # runs on any of them.
    pids="$(psql_on "$CUT_ADMIN_URL" -c "WITH chosen AS MATERIALIZED ($query)
        SELECT string_agg(pid::text, ',') FROM chosen WHERE pg_terminate_backend(pid)")"
    if [[ ! "$pids" =~ $expected ]]; then
        printf 'cut-listeners: pg_terminate_backend signaled the backends "%s"; want %s\n' "$pids" "$expected" >&2
        return 1
    fi
    for attempt in $(seq 1 200); do
        remaining="$(psql_on "$CUT_ADMIN_URL" -c "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($pids)")"
        [[ "$remaining" == 0 ]] && return 0
        sleep 0.005
    done
    printf 'cut-listeners: backends %s still run after %s checks\n' "$pids" "$attempt" >&2
    return 1
}

case "${1:-}" in
    listeners)
        # A listener cut in the previous round may still be reconnecting.
        wait_for_listeners 100
        terminate "$listeners_sql" '^[0-9]+,[0-9]+$'
        ;;
    isolate)
        wait_for_listeners 100
        psql_on "$CUT_ADMIN_URL" -c "ALTER DATABASE $CUT_DATABASE ALLOW_CONNECTIONS false"
        # The server runs as superuser, like the replicas, so this checks
        # that the setting rejects superusers too.
        if psql_on "$CUT_DATABASE_URL" -c 'SELECT 1' >/dev/null 2>&1; then
            printf 'cut-listeners: a new connection to %s succeeded after ALLOW_CONNECTIONS false\n' "$CUT_DATABASE" >&2
            exit 1
        fi
        # At least the two listeners, and usually pooled connections too.
        terminate "$replicas_sql" '^[0-9]+(,[0-9]+)+$'
        ;;
    restore)
        psql_on "$CUT_ADMIN_URL" -c "ALTER DATABASE $CUT_DATABASE ALLOW_CONNECTIONS true"
        # tokend retries a failed listener connection once per second.
        wait_for_listeners 200
        ;;
    *)
        printf 'usage: cut-listeners.sh listeners|isolate|restore\n' >&2
        exit 2
        ;;
esac
EOF
chmod 700 "$CUT_SCRIPT"
export CUT_PSQL="$PG_BINDIR/psql" CUT_ADMIN_URL="$PG_ADMIN_URL" CUT_DATABASE="$DATABASE_NAME" \
    CUT_DATABASE_URL="$DATABASE_URL"

# ---------------------------------------------------------------------------
# Measurement

# Prints how often the replica $1 logged a lost or failed revocation
# listener, which is once per reconnect.
listener_reconnects() {
    grep -c 'revocation listener connection lost\|revocation listener failed' "$OUTPUT_DIR/replica-$1.log" || true
}

# Prints how many Validate calls the replica $1 logged as failed with
# UNAVAILABLE. The Go program counts these too, but only on its side of
# the connection.
unavailable_validates() {
    grep -c 'rpc failed method="Validate" code="UNAVAILABLE"' "$OUTPUT_DIR/replica-$1.log" || true
}

# Runs one phase of the Go program. $1 names the phase and its files, $2 is
# the number of rounds, and the rest goes to the program. Counts a failed
# phase and continues, so that the other phases are still measured.
run_phase() {
    local phase="$1" rounds="$2" before=() unavailable_before=() replica status=0
    shift 2
    for ((replica = 2; replica <= REPLICAS; replica++)); do
        before+=("$(listener_reconnects "$replica")")
        unavailable_before+=("$(unavailable_validates "$replica")")
    done
    log "phase '$phase': $rounds rounds on $REPLICA_LIST"
    TOKEND_TOKEN="$ADMIN_TOKEN" timeout "$((rounds * SECONDS_PER_ROUND_LIMIT + 60))" "$WORK_DIR/revocation" \
        -phase "$phase" -replicas "$REPLICA_LIST" -rounds "$rounds" -json "$OUTPUT_DIR/$phase.json" "$@" \
        >"$OUTPUT_DIR/$phase.txt" || status=$?
    for ((replica = 2; replica <= REPLICAS; replica++)); do
        printf 'replica %d logged %d listener reconnects and %d Validate calls failed with UNAVAILABLE during this phase\n' \
            "$replica" "$(($(listener_reconnects "$replica") - before[replica - 2]))" \
            "$(($(unavailable_validates "$replica") - unavailable_before[replica - 2]))" >>"$OUTPUT_DIR/$phase.txt"
    done
    if [[ "$status" -ne 0 ]]; then
        log "FAILED: phase '$phase' exited with status $status; see $OUTPUT_DIR/$phase.txt"
        FAILURES=$((FAILURES + 1))
    fi
}

LOAD_AVERAGE="$(cut -d' ' -f1-3 /proc/loadavg)"
RUN_START=$SECONDS
run_phase notify "$ROUNDS" -target-p99 "$NOTIFY_TARGET_P99"
run_phase listener-cut "$CUT_ROUNDS" -before-revoke "$(printf '%q listeners' "$CUT_SCRIPT")" \
    -deadline "${CUT_DEADLINE_SECONDS}s" -target-max "${CACHE_TTL_SECONDS}s"
run_phase ttl "$TTL_ROUNDS" -before-revoke "$(printf '%q isolate' "$CUT_SCRIPT")" \
    -after-revoke "$(printf '%q restore' "$CUT_SCRIPT")" -count-unavailable -poll-interval "$TTL_POLL_INTERVAL" \
    -deadline "${CUT_DEADLINE_SECONDS}s" -target-max "${CACHE_TTL_SECONDS}s"

{
    printf '# tokend revocation visibility\n\n'
    printf -- '- date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- machine: %s CPUs (%s), %s memory; load average at the start %s\n' "$(nproc)" \
        "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)" "$(free -h | awk '/^Mem:/ { print $2 }')" "$LOAD_AVERAGE"
    printf -- '- tokend: %s, sha256 %.12s; %d replicas on 127.0.0.1, --cache-ttl %ss, other settings default\n' \
        "$BINARY_NAME" "$(sha256sum "$TOKEND")" "$REPLICAS" "$CACHE_TTL_SECONDS"
    printf -- '- PostgreSQL %s (scripts/postgres.sh)\n' "$("$PG_BINDIR/postgres" --version | awk '{ print $3 }')"
    printf -- '- run time: %s s\n' "$((SECONDS - RUN_START))"
    printf '\n```text\n'
    cat "$OUTPUT_DIR/notify.txt"
    printf '\n'
    cat "$OUTPUT_DIR/listener-cut.txt"
    printf '\n'
    cat "$OUTPUT_DIR/ttl.txt"
    printf '```\n'
} | tee "$OUTPUT_DIR/results.md"

log "finished with $FAILURES failed phases"
[[ "$FAILURES" -eq 0 ]] || exit 1
