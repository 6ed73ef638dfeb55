# shellcheck shell=bash
# Starting and stopping tokend servers on loopback, shared by the benchmark
# scripts. Source it after scripts/env.sh:
#
#   . bench/lib.sh
#
# The sourcing script defines log (one line to stderr) and fail (log, then
# exit 1), and its EXIT trap calls stop_all_tokends, so that no server
# outlives the script, even one that fails while it starts.

# PIDs of the servers that start_tokend started and stop_tokend has not
# stopped yet.
TOKEND_PIDS=()

# Sets TOKEND to a private copy of the tokend binary $1 in the directory $2,
# and BINARY_NAME to a description of it for reports. An empty $1 builds
# the release binary with cargo first. Other builds share target/, so the
# scripts run a copy that cannot change under them.
prepare_tokend() {
    local binary="$1" work_dir="$2"
    if [[ -z "$binary" ]]; then
        log "building the release binary"
        cargo build --release --quiet
        binary="${CARGO_TARGET_DIR:-$TOKEND_ROOT/target}/release/tokend"
        BINARY_NAME="$(git rev-parse --short HEAD 2>/dev/null || printf 'unknown')"
        # Changes to the benchmark scripts and docs do not change the binary.
        if [[ -n "$(git status --porcelain --untracked-files=no -- . ':!bench' ':!docs' 2>/dev/null)" ]]; then
            BINARY_NAME="$BINARY_NAME with uncommitted changes"
        fi
        BINARY_NAME="$BINARY_NAME, release build"
    else
        [[ -x "$binary" ]] || fail "--binary $binary is not an executable file"
        BINARY_NAME="$binary (given with --binary)"
    fi
    TOKEND="$work_dir/tokend"
    cp "$binary" "$TOKEND"
}

# Prints a port from 20000-31999 that nothing listens on. The range is below
# Linux's default ephemeral ports, so outgoing connections cannot hold it.
pick_free_port() {
    local attempt port
    for attempt in $(seq 1 50); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    fail "found no free port after $attempt tries"
}

# Starts `tokend serve` on 127.0.0.1 with its metrics on another loopback
# port, and waits until the metrics respond and a Validate of the secret $4
# through the CLI, with $3 as the caller's token, returns VALID. $1 names
# the server in messages, $2 is its log file, and the rest are further
# serve flags. Retries on other ports when a chosen one was taken.
#
# Sets STARTED_PID, STARTED_PORT and STARTED_METRICS_PORT.
start_tokend() {
    local name="$1" log_file="$2" caller_token="$3" secret="$4" attempt waited pid port metrics_port
    shift 4
    for attempt in 1 2 3 4 5; do
        port="$(pick_free_port)"
        metrics_port="$(pick_free_port)"
        "$TOKEND" serve --listen "127.0.0.1:$port" --metrics-addr "127.0.0.1:$metrics_port" "$@" >"$log_file" 2>&1 &
        pid=$!
        TOKEND_PIDS+=("$pid")
        for waited in $(seq 1 300); do
            if ! kill -0 "$pid" 2>/dev/null; then
                wait "$pid" || true
                forget_tokend "$pid"
                pid=""
                break
            fi
            # The secret goes through stdin to keep it out of the process list.
            if curl -sf --max-time 2 "http://127.0.0.1:$metrics_port/metrics" >/dev/null &&
                printf '%s' "$secret" | TOKEND_TOKEN="$caller_token" timeout 10 "$TOKEND" token validate \
                    --server "http://127.0.0.1:$port" >/dev/null 2>&1; then
                log "server '$name' ready on 127.0.0.1:$port (pid $pid, metrics on port $metrics_port, ${waited}x0.1 s)"
                # shellcheck disable=SC2034 # the sourcing script reads them
                {
                    STARTED_PID=$pid
                    STARTED_PORT=$port
                    STARTED_METRICS_PORT=$metrics_port
                }
                return 0
            fi
            sleep 0.1
        done
        if [[ -n "$pid" ]]; then
            stop_tokend "$pid"
            tail -n 20 "$log_file" >&2
            fail "server '$name' did not answer within 30 s; log above"
        fi
        if ! grep -q 'failed to listen\|Address already in use' "$log_file"; then
            tail -n 20 "$log_file" >&2
            fail "server '$name' exited at start; log above"
        fi
        log "port taken, trying again (attempt $attempt of 5)"
    done
    fail "server '$name' found no free port after 5 attempts"
}

# Sends SIGTERM to the server with PID $1 and waits for it, or kills it
# after 40 s (its default shutdown grace period is 30 s).
stop_tokend() {
    local pid="$1" waited
    kill -TERM "$pid" 2>/dev/null || true
    for waited in $(seq 1 400); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "server pid $pid still runs after ${waited}x0.1 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget_tokend "$pid"
}

# Stops every server that start_tokend started and that still runs.
stop_all_tokends() {
    local pid
    for pid in "${TOKEND_PIDS[@]}"; do
        stop_tokend "$pid"
    done
}

# Removes PID $1 from TOKEND_PIDS.
forget_tokend() {
    local pid kept=()
    for pid in "${TOKEND_PIDS[@]}"; do
        [[ "$pid" == "$1" ]] || kept+=("$pid")
    done
    TOKEND_PIDS=("${kept[@]}")
}

# Runs psql quietly, stopping at the first error and printing bare values.
# Needs PG_BINDIR, the directory of PostgreSQL's programs.
psql_run() {
    PGOPTIONS='-c client_min_messages=warning' "$PG_BINDIR/psql" --no-psqlrc --quiet --set ON_ERROR_STOP=1 --tuples-only --no-align "$@"
}
