#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time, one after the
# other, and prints one line per target: executions, executions per second,
# new corpus inputs and the result.
#
#   bench/fuzz.sh          # 300 s per target
#   bench/fuzz.sh 60       # 60 s per target
#   FUZZ_TARGETS=token_parse bench/fuzz.sh 30
#
# Needs the nightly Rust toolchain (rustup toolchain install nightly),
# because libFuzzer's instrumentation uses unstable compiler flags. Installs
# cargo-fuzz at the pinned version into .tools/bin when it is missing.
#
# The committed seeds in fuzz/corpus/<target> are only read. Inputs that
# libFuzzer finds go to fuzz/target/corpus/<target>, so a later run goes on
# from there. A crash is written to fuzz/artifacts/<target>/ and makes the
# script exit 1 after every target has run. Builds use AddressSanitizer,
# cargo-fuzz's default, with debug assertions and overflow checks on.
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$TOKEND_ROOT"

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET="${1:-300}"
# A cold build instruments every dependency and took 14 minutes on a
# 2-core machine. This limit only stops a build that hangs.
BUILD_LIMIT_SECONDS=3600
# Time past -max_total_time before a target that does not stop is killed.
RUN_SLACK_SECONDS=120

log() {
    printf 'fuzz %s: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

fail() {
    log "error: $*"
    exit 1
}

[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] ||
    fail "invalid duration '$SECONDS_PER_TARGET'; give whole seconds such as 300"

rustup run nightly rustc --version >/dev/null 2>&1 ||
    fail "the nightly toolchain is missing; install it with: rustup toolchain install nightly"

# Installs cargo-fuzz into .tools/bin unless that version is already there.
install_cargo_fuzz() {
    local installed=""
    if [[ -x .tools/bin/cargo-fuzz ]]; then
        installed="$(.tools/bin/cargo-fuzz --version 2>/dev/null | awk '{ print $2 }')"
    fi
    if [[ "$installed" == "$CARGO_FUZZ_VERSION" ]]; then
        return 0
    fi
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools/bin (found '${installed:-none}')"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root .tools --force
}

install_cargo_fuzz

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    IFS=, read -r -a TARGETS <<<"$FUZZ_TARGETS"
else
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
[[ "${#TARGETS[@]}" -gt 0 ]] || fail "no fuzz targets found in fuzz/Cargo.toml"

log "building ${TARGETS[*]} (the first build instruments every dependency and takes minutes)"
timeout "$BUILD_LIMIT_SECONDS" cargo +nightly fuzz build || fail "cargo fuzz build failed"

LOG_DIR="fuzz/target/logs"
mkdir -p "$LOG_DIR"

# Prints the value of libFuzzer's final statistic $2 from log $1, or "n/a".
final_stat() {
    awk -v name="stat::$2:" '$1 == name { value = $2 } END { print (value == "" ? "n/a" : value) }' "$1"
}

CRASHED=()
SUMMARY=()
for target in "${TARGETS[@]}"; do
    [[ -d "fuzz/corpus/$target" ]] || fail "no seed corpus fuzz/corpus/$target"
    work_corpus="fuzz/target/corpus/$target"
    target_log="$LOG_DIR/$target.log"
    mkdir -p "$work_corpus"
    log "running $target for $SECONDS_PER_TARGET s (log: $target_log)"
    status=0
    # libFuzzer writes new inputs to the first corpus directory, so the
    # seeds stay as committed.
    timeout "$((SECONDS_PER_TARGET + RUN_SLACK_SECONDS))" \
        cargo +nightly fuzz run "$target" "$work_corpus" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$target_log" 2>&1 ||
        status=$?

    if [[ "$status" -eq 0 ]]; then
        result="ok"
    else
        artifact="$(grep -o 'Test unit written to [^ ]*' "$target_log" | tail -n 1 | cut -d' ' -f5)"
        result="FAILED (exit $status${artifact:+, reproducer $artifact})"
        CRASHED+=("$target")
        grep -m 1 -A 4 'panicked at' "$target_log" >&2 || tail -n 20 "$target_log" >&2
    fi
    SUMMARY+=("$(printf '%-20s %10s %10s %8s  %s' "$target" \
        "$(final_stat "$target_log" number_of_executed_units)" \
        "$(final_stat "$target_log" average_exec_per_sec)" \
        "$(final_stat "$target_log" new_units_added)" "$result")")
done

printf '%-20s %10s %10s %8s  %s\n' target execs execs/s new result
printf '%s\n' "${SUMMARY[@]}"

if [[ "${#CRASHED[@]}" -gt 0 ]]; then
    log "crashes in: ${CRASHED[*]}; reproduce with: cargo +nightly fuzz run TARGET ARTIFACT"
    exit 1
fi
