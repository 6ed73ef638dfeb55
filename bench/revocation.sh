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
# bench/revocation in two phases:
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
#
# Each round generates a token on replica 1 and validates it on all three
# replicas, so that each one caches it. Then it revokes the token on
# replica 1, checks that replica 1 returns REVOKED at once, and polls
# Validate on replicas 2 and 3 until each returns REVOKED. The script
# prints one table per phase and exits 1 when any round fails: a failed
# call, an unexpected Validate result, or a replica still returning VALID
# at the round's deadline. Missed targets are reported, not counted as
# failures.
#
# Options (each also has an environment variable):
#   --binary PATH       BENCH_TOKEND_BINARY     measure this tokend build instead
#                                               of building target/release/tokend
#   --rounds N          REVOCATION_ROUNDS       notify rounds, default 300
#   --cut-rounds N      REVOCATION_CUT_ROUNDS   listener-cut rounds, default 20
#   --output-dir DIR    REVOCATION_OUTPUT_DIR   where the tables, JSON and server
#                                               logs go (default: a new directory
#                                               under ${TMPDIR:-/tmp})
#
# Needs Go 1.26 or newer, jq, curl, and the server programs and psql from
# Debian's postgresql package. Every server listens on 127.0.0.1 only. When
# the script exits, it stops the replicas by PID and the cluster with
# `scripts/postgres.sh stop`.
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
OUTPUT_DIR="${REVOCATION_OUTPUT_DIR:-}"

REPLICAS=3
# Passed to every replica explicitly, because the listener-cut target is
# this TTL.
CACHE_TTL_SECONDS=10
NOTIFY_TARGET_P99=100ms
# A replica that missed the notice must see the revoke when its cache entry
# expires. The two extra seconds leave room for the Validate calls around
# that moment, so only a replica that outlives the TTL by far fails.
CUT_DEADLINE_SECONDS=$((CACHE_TTL_SECONDS + 2))
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
FAILURES=0

# Stops the replicas and the PostgreSQL cluster that this script started,
# and deletes the work directory with the database, the key and the admin
# token. Reports in OUTPUT_DIR stay.
cleanup() {
    local status=$?
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

psql_run() {
    PGOPTIONS='-c client_min_messages=warning' "$PG_BINDIR/psql" --no-psqlrc --quiet --set ON_ERROR_STOP=1 --tuples-only --no-align "$@"
}

# ---------------------------------------------------------------------------
# Build

prepare_tokend "$BINARY" "$WORK_DIR"
log "building bench/revocation"
(cd bench/revocation && go build -o "$WORK_DIR/revocation" .)

# ---------------------------------------------------------------------------
# Database, key, admin token and replicas

PG_ADMIN_URL="$(scripts/postgres.sh start)"
POSTGRES_STARTED=true
psql_run --dbname="$PG_ADMIN_URL" -c "CREATE DATABASE tokend_revocation" >/dev/null
DATABASE_URL="${PG_ADMIN_URL%/*}/tokend_revocation"
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
# The listener cut

# NOTE: the cut phase does not check the TTL bound itself, because the
# reconnect clears the cache long before the TTL. A replica whose listener
# cannot reconnect relies on the TTL alone, and no phase measures that case.
#
# The Go program runs this script before each Revoke of the cut phase. It
# signals both listeners in one statement, so that both replicas lose their
# listener at the same moment, and returns once both backends have exited,
# so that the Revoke's notice cannot reach them. pg_terminate_backend with a
# timeout would wait in steps of 100 ms, one backend after the other, which
# would put the two cuts about 100 ms apart.
CUT_SCRIPT="$WORK_DIR/cut-listeners.sh"
cat >"$CUT_SCRIPT" <<'EOF'
#!/usr/bin/env bash
# Ends the LISTEN connections of replicas 2 and 3. bench/revocation.sh writes
# this file and sets CUT_PSQL and CUT_DATABASE_URL.
set -euo pipefail

psql_run() {
    PGOPTIONS='-c client_min_messages=warning' "$CUT_PSQL" --no-psqlrc --quiet --set ON_ERROR_STOP=1 \
        --tuples-only --no-align --dbname="$CUT_DATABASE_URL" "$@"
}

listeners_sql="SELECT pid FROM pg_stat_activity WHERE datname = current_database()
    AND application_name IN ('tokend-replica-2', 'tokend-replica-3') AND query LIKE 'LISTEN%'"

# A listener cut in the previous round may still be reconnecting.
for attempt in $(seq 1 100); do
    listeners="$(psql_run -c "SELECT count(*) FROM ($listeners_sql) AS listeners")"
    [[ "$listeners" == 2 ]] && break
    sleep 0.05
done
if [[ "$listeners" != 2 ]]; then
    printf 'cut-listeners: found %s LISTEN connections of replicas 2 and 3 after %s tries; want 2\n' "$listeners" "$attempt" >&2
    exit 1
fi

# MATERIALIZED makes the filter pick the rows before pg_terminate_backend
# runs on any of them.
pids="$(psql_run -c "WITH listeners AS MATERIALIZED ($listeners_sql)
    SELECT string_agg(pid::text, ',') FROM listeners WHERE pg_terminate_backend(pid)")"
if [[ ! "$pids" =~ ^[0-9]+,[0-9]+$ ]]; then
    printf 'cut-listeners: pg_terminate_backend signaled the backends "%s"; want two process ids\n' "$pids" >&2
    exit 1
fi

for attempt in $(seq 1 200); do
    remaining="$(psql_run -c "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($pids)")"
    [[ "$remaining" == 0 ]] && exit 0
    sleep 0.005
done
printf 'cut-listeners: backends %s still run after %s checks\n' "$pids" "$attempt" >&2
exit 1
EOF
chmod 700 "$CUT_SCRIPT"
export CUT_PSQL="$PG_BINDIR/psql" CUT_DATABASE_URL="$DATABASE_URL"

# ---------------------------------------------------------------------------
# Measurement

# Prints how often the replica $1 logged a lost or failed revocation
# listener, which is once per reconnect.
listener_reconnects() {
    grep -c 'revocation listener connection lost\|revocation listener failed' "$OUTPUT_DIR/replica-$1.log" || true
}

# Runs one phase of the Go program. $1 names the phase and its files, $2 is
# the number of rounds, and the rest goes to the program. Counts a failed
# phase and continues, so that the other phase is still measured.
run_phase() {
    local phase="$1" rounds="$2" before=() replica status=0
    shift 2
    for ((replica = 2; replica <= REPLICAS; replica++)); do
        before+=("$(listener_reconnects "$replica")")
    done
    log "phase '$phase': $rounds rounds on $REPLICA_LIST"
    TOKEND_TOKEN="$ADMIN_TOKEN" timeout "$((rounds * SECONDS_PER_ROUND_LIMIT + 60))" "$WORK_DIR/revocation" \
        -phase "$phase" -replicas "$REPLICA_LIST" -rounds "$rounds" -json "$OUTPUT_DIR/$phase.json" "$@" \
        >"$OUTPUT_DIR/$phase.txt" || status=$?
    for ((replica = 2; replica <= REPLICAS; replica++)); do
        printf 'replica %d logged %d listener reconnects during this phase\n' \
            "$replica" "$(($(listener_reconnects "$replica") - before[replica - 2]))" >>"$OUTPUT_DIR/$phase.txt"
    done
    if [[ "$status" -ne 0 ]]; then
        log "FAILED: phase '$phase' exited with status $status; see $OUTPUT_DIR/$phase.txt"
        FAILURES=$((FAILURES + 1))
    fi
}

LOAD_AVERAGE="$(cut -d' ' -f1-3 /proc/loadavg)"
RUN_START=$SECONDS
run_phase notify "$ROUNDS" -target-p99 "$NOTIFY_TARGET_P99"
run_phase listener-cut "$CUT_ROUNDS" -before-revoke "$CUT_SCRIPT" \
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
    printf '```\n'
} | tee "$OUTPUT_DIR/results.md"

log "finished with $FAILURES failed phases"
[[ "$FAILURES" -eq 0 ]] || exit 1
