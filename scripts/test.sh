#!/usr/bin/env bash
# Runs every check and test of the project, and is what CI runs.
#
# Steps, stopping at the first failure:
#   install tools, buf lint, buf breaking, generated clients up to date,
#   cargo fmt, cargo clippy, cargo build, start PostgreSQL,
#   cargo test on SQLite, cargo test on PostgreSQL, Go client, Node client,
#   benchmark smoke, revocation benchmark smoke.
# Steps whose inputs do not exist yet (no earlier commit, no client) are
# skipped with a note. A summary with each step's result ends the output.
#
# Environment:
#   TOKEND_BREAKING_BASE  git revision that buf breaking compares proto/
#                         against (default HEAD~1), for example origin/main
#   CI=true               sets time limits on the test steps and build
#                         settings for one-off builds
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$TOKEND_ROOT"

BREAKING_BASE="${TOKEND_BREAKING_BASE:-HEAD~1}"

# Directories that buf.gen.yaml writes and that must match a fresh
# `buf generate`. A plugin writing anywhere else fails the check, so this
# list cannot silently fall behind buf.gen.yaml.
GENERATED_DIRS=(clients/go/gen clients/node/src/gen)

# Upper bound for one test command in CI, so that a hung test fails the
# step instead of running into CI's own limit. It includes the build of the
# test binaries.
CI_TEST_TIME_LIMIT=20m

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tokend-test.XXXXXXXX")"
# Each run gets its own PostgreSQL state file, so a cluster a developer
# started by hand, or a concurrent run, is left alone.
export TOKEND_PG_STATE="$WORK_DIR/postgres.state"
POSTGRES_STARTED=false
RUN_START=$SECONDS

# The step that is running, so that a failure or signal that ends the
# script outside run_step is reported against it in the summary.
CURRENT_STEP=""
CURRENT_STEP_START=0

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
STEP_NOTES=()

record_step() {
    STEP_NAMES+=("$1")
    STEP_RESULTS+=("$2")
    STEP_SECONDS+=("$3")
    STEP_NOTES+=("${4:-}")
}

# Runs a step in a subshell with errexit on, so that any failing command in
# a step function fails the step. Records the result and exits on failure.
run_step() {
    local name="$1" start=$SECONDS status
    shift
    printf '\n==> %s\n' "$name"
    CURRENT_STEP="$name"
    CURRENT_STEP_START=$start
    set +e
    (
        set -e
        "$@"
    )
    status=$?
    set -e
    CURRENT_STEP=""
    if [[ $status -eq 0 ]]; then
        record_step "$name" PASS $((SECONDS - start))
        return 0
    fi
    local note="exit status $status"
    if [[ $status -eq 124 && "${CI:-}" == true ]]; then
        note="timed out after $CI_TEST_TIME_LIMIT"
    fi
    record_step "$name" FAIL $((SECONDS - start)) "$note"
    printf '==> %s failed: %s\n' "$name" "$note" >&2
    exit "$status"
}

skip_step() {
    printf '\n==> %s: skipped, %s\n' "$1" "$2"
    record_step "$1" SKIP 0 "$2"
}

# Runs a command under CI_TEST_TIME_LIMIT in CI. Outside CI it runs
# unbounded, because timeout(1) moves the command out of the terminal's
# process group and Ctrl-C would then no longer reach it.
with_time_limit() {
    if [[ "${CI:-}" == true ]]; then
        timeout --kill-after=30s "$CI_TEST_TIME_LIMIT" "$@"
    else
        "$@"
    fi
}

# Prints "passed failed ignored" summed over the `test result:` lines of
# cargo test logs.
count_cargo_tests() {
    awk '/^test result:/ {
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^passed;?$/) passed += $(i - 1)
                if ($i ~ /^failed;?$/) failed += $(i - 1)
                if ($i ~ /^ignored;?$/) ignored += $(i - 1)
            }
        }
        END { printf "%d %d %d\n", passed, failed, ignored }' "$@"
}

print_summary() {
    local status="$1" i logs
    printf '\n==> summary (%ds)\n' $((SECONDS - RUN_START))
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-4s %5ss  %s' "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}" "${STEP_NAMES[$i]}"
        if [[ -n "${STEP_NOTES[$i]}" ]]; then
            printf ': %s' "${STEP_NOTES[$i]}"
        fi
        printf '\n'
    done
    if [[ $status -eq 0 ]]; then
        printf 'test.sh: all steps passed\n'
    else
        printf 'test.sh: FAILED (exit status %d)\n' "$status"
    fi

    # The last line counts the Rust tests that ran, so that a run which
    # executed no test at all shows "0 passed" in its closing line.
    logs=("$WORK_DIR"/cargo-test-*.log)
    if [[ -f "${logs[0]}" ]]; then
        local passed failed ignored
        read -r passed failed ignored < <(count_cargo_tests "${logs[@]}")
        printf 'Rust tests, summed over the cargo test runs on both engines:\n'
        printf 'tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$ignored"
    fi
}

on_exit() {
    local status=$?
    trap - EXIT
    if [[ -n "$CURRENT_STEP" ]]; then
        local note="exit status $status"
        if [[ $status -gt 128 ]]; then
            note="interrupted by signal $((status - 128))"
        fi
        record_step "$CURRENT_STEP" FAIL $((SECONDS - CURRENT_STEP_START)) "$note"
    fi
    if [[ "$POSTGRES_STARTED" == true ]]; then
        printf '\n==> stop PostgreSQL\n'
        if scripts/postgres.sh stop; then
            record_step "stop PostgreSQL" PASS 0
        else
            record_step "stop PostgreSQL" FAIL 0 "a server may still run; see the messages above"
            [[ $status -ne 0 ]] || status=1
        fi
    fi
    print_summary "$status"
    rm -rf -- "$WORK_DIR"
    exit "$status"
}

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "${CI:-}" == true ]]; then
    # CI builds once from scratch, so incremental compilation only costs time
    # and disk there. Line tables keep file and line numbers in backtraces
    # with less to compile and link than full debug info.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
    export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
fi
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step_buf_lint() {
    # buf.yaml at the root lists proto/ as the module. Without it, buf uses
    # its defaults on proto/ directly.
    if [[ -f buf.yaml ]]; then
        buf lint
    else
        buf lint proto
    fi
}

step_generated_code() {
    local out="$WORK_DIR/generated" dir file rel covered
    mkdir -p "$out"
    # --output prefixes every `out:` path of buf.gen.yaml, so the work tree
    # is not touched and uncommitted generated files are compared too.
    buf generate --output "$out"

    for dir in "${GENERATED_DIRS[@]}"; do
        if [[ ! -d "$out/$dir" ]]; then
            if [[ -d "$dir" ]]; then
                printf '%s exists, but buf generate no longer writes it\n' "$dir" >&2
                return 1
            fi
            continue
        fi
        if ! diff -r "$out/$dir" "$dir" >"$WORK_DIR/generated.diff"; then
            head -n 80 "$WORK_DIR/generated.diff" >&2
            printf '%s differs from buf generate output (diff above, first 80 lines); run buf generate and commit the result\n' "$dir" >&2
            return 1
        fi
        printf '%s matches buf generate output\n' "$dir"
    done

    while IFS= read -r file; do
        rel="${file#"$out"/}"
        covered=false
        for dir in "${GENERATED_DIRS[@]}"; do
            if [[ "$rel" == "$dir"/* ]]; then
                covered=true
            fi
        done
        if [[ "$covered" == false ]]; then
            printf 'buf generate wrote %s, outside the checked directories; add its directory to GENERATED_DIRS in scripts/test.sh\n' "$rel" >&2
            return 1
        fi
    done < <(find "$out" -type f)
}

step_cargo_build() {
    cargo build --workspace --locked
    [[ -x "$TOKEND_BIN" ]] || {
        printf 'cargo build finished, but %s is missing\n' "$TOKEND_BIN" >&2
        return 1
    }
}

# Runs the Rust tests on one storage engine. The tests read
# TOKEND_TEST_ENGINE, and for postgres TOKEND_TEST_POSTGRES_URL, a superuser
# URL on which each test creates its own database.
step_cargo_test() {
    local engine="$1"
    export TOKEND_TEST_ENGINE="$engine"
    if [[ "$engine" == postgres ]]; then
        export TOKEND_TEST_POSTGRES_URL="$POSTGRES_URL"
    else
        unset TOKEND_TEST_POSTGRES_URL
    fi
    # cargo test's exit status passes through tee because of pipefail.
    with_time_limit cargo test --workspace --locked 2>&1 | tee "$WORK_DIR/cargo-test-$engine.log"
}

# A short benchmark run on the debug build, so the bench scripts cannot rot.
# Its numbers mean nothing; it fails when any call returns an error.
step_bench_smoke() {
    bench/install.sh
    with_time_limit bench/run.sh --quick --binary "$TOKEND_BIN"
}

# A few rounds of each revocation phase on three debug-build replicas, so
# that script and its Go program cannot rot either. One round of the TTL
# phase waits out the 10 s cache lifetime.
step_revocation_smoke() {
    (cd bench/revocation && go vet ./... && with_time_limit go test -count=1 ./...)
    with_time_limit bench/revocation.sh --binary "$TOKEND_BIN" --rounds 20 --cut-rounds 2 --ttl-rounds 1
}

step_go_client() {
    cd clients/go
    go vet ./...
    # -count=1 turns off Go's test cache, so every run exercises the tokend
    # binary that was just built instead of reporting a cached result.
    with_time_limit go test -count=1 ./...
}

step_node_client() {
    cd clients/node
    npm ci --no-audit --no-fund
    # --no stops npm from downloading a package named tsc when TypeScript
    # is missing from the client's devDependencies.
    npm exec --no -- tsc --noEmit
    with_time_limit npm test
}

run_step "install tools" scripts/install-tools.sh

run_step "buf lint" step_buf_lint

if base_commit="$(git rev-parse --verify --quiet "$BREAKING_BASE^{commit}" 2>/dev/null)" &&
    git cat-file -e "$base_commit:proto" 2>/dev/null; then
    run_step "buf breaking against $BREAKING_BASE" \
        buf breaking proto --against ".git#ref=$base_commit,subdir=proto"
else
    skip_step "buf breaking" "no commit $BREAKING_BASE with a proto/ directory to compare against"
fi

if [[ -f buf.gen.yaml ]]; then
    run_step "generated clients up to date" step_generated_code
else
    skip_step "generated clients up to date" "no buf.gen.yaml"
fi

run_step "cargo fmt" cargo fmt --all --check
run_step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings

export TOKEND_BIN="$TOKEND_ROOT/target/debug/tokend"
run_step "cargo build" step_cargo_build

if ! GRPCURL="$(command -v grpcurl)"; then
    printf 'grpcurl not found on PATH after scripts/install-tools.sh; expected it in %s\n' "$TOKEND_ROOT/.tools/bin" >&2
    exit 1
fi
export GRPCURL

# PostgreSQL starts in this shell, not through run_step, because the URL
# must outlive the step for the tests below.
printf '\n==> start PostgreSQL\n'
CURRENT_STEP="start PostgreSQL"
CURRENT_STEP_START=$SECONDS
POSTGRES_STARTED=true
if ! POSTGRES_URL="$(scripts/postgres.sh start)"; then
    exit 1
fi
CURRENT_STEP=""
record_step "start PostgreSQL" PASS $((SECONDS - CURRENT_STEP_START))
printf 'PostgreSQL URL: %s\n' "$POSTGRES_URL"

run_step "cargo test (sqlite)" step_cargo_test sqlite
run_step "cargo test (postgres)" step_cargo_test postgres

if [[ -f clients/go/go.mod ]]; then
    run_step "Go client" step_go_client
else
    skip_step "Go client" "no clients/go/go.mod"
fi

if [[ -f clients/node/package.json ]]; then
    run_step "Node client" step_node_client
else
    skip_step "Node client" "no clients/node/package.json"
fi

run_step "benchmark smoke" step_bench_smoke
run_step "revocation benchmark smoke" step_revocation_smoke
