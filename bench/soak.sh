#!/usr/bin/env bash
# Soak test: drives Validate at a fixed rate for a long time on one tokend
# and checks that no call fails and that the server's memory stays flat.
#
#   bench/soak.sh                    # 10 minutes on SQLite
#   bench/soak.sh 2                  # 2 minutes
#   bench/soak.sh --engine postgres 10
#
# The script builds the release binary, seeds 10,000 tokens with `tokend
# admin seed` and starts `tokend serve` on 127.0.0.1. A 10 s ghz run at
# full speed measures the peak Validate rate. Then ghz runs at 70 % of that
# peak for MINUTES, one ghz run per minute. The request data interleaves a few hot
# secrets with many cold ones, and the cache is smaller than the cold set,
# so the soak mixes cache hits with database lookups. The server's RSS
# (VmRSS in /proc/PID/status) is sampled every 10 s to rss.csv.
#
# At the end it prints total calls, errors, p50 and p99 over every call,
# and RSS first, min, max and last. It also prints a verdict on memory.
# Memory counts as flat when the last sample is at most 1.1 times the first
# sample after warm-up, which is the first third of the soak and at least a
# minute. A 1-minute soak leaves fewer than two samples after warm-up, so
# its memory is reported as not judged. The script exits 1 when any call
# failed, any Validate returned a result other than VALID, or memory grew
# past that bound.
#
# Options (each also has an environment variable):
#   --engine sqlite|postgres   SOAK_ENGINE          default sqlite
#   --cache-capacity N         SOAK_CACHE_CAPACITY  default 100 entries
#   --concurrency N            SOAK_CONCURRENCY     ghz workers, default 16
#   --connections N            SOAK_CONNECTIONS     HTTP/2 connections, default 4
#   --output-dir DIR           SOAK_OUTPUT_DIR      default: a new directory
#                                                   under ${TMPDIR:-/tmp}
#
# Needs ghz (installed with bench/install.sh when missing, which needs Go), jq, curl,
# and for PostgreSQL the server programs from Debian's postgresql package.
# Every server listens on 127.0.0.1 only and is stopped by PID on exit.
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
# shellcheck source=bench/lib.sh
. "$TOKEND_ROOT/bench/lib.sh"
cd "$TOKEND_ROOT"

ENGINE="${SOAK_ENGINE:-sqlite}"
CACHE_CAPACITY="${SOAK_CACHE_CAPACITY:-100}"
CONCURRENCY="${SOAK_CONCURRENCY:-16}"
CONNECTIONS="${SOAK_CONNECTIONS:-4}"
OUTPUT_DIR="${SOAK_OUTPUT_DIR:-}"
MINUTES=10

TOKENS=10000
# Secrets that the seed writes out: a few hot ones and the rest cold.
SECRETS=1000
HOT_SECRETS=10
PEAK_SECONDS=10
# Share of the measured peak rate that the soak runs at, in percent.
LOAD_PERCENT=70
RSS_INTERVAL_SECONDS=10
# Memory counts as flat when the last sample is at most this factor of the
# first sample after warm-up.
RSS_GROWTH_LIMIT=1.1
METHOD=tokens.v1.TokenService.Validate

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --engine) ENGINE="${2:?--engine needs a value}"; shift ;;
        --cache-capacity) CACHE_CAPACITY="${2:?--cache-capacity needs a value}"; shift ;;
        --concurrency) CONCURRENCY="${2:?--concurrency needs a value}"; shift ;;
        --connections) CONNECTIONS="${2:?--connections needs a value}"; shift ;;
        --output-dir) OUTPUT_DIR="${2:?--output-dir needs a value}"; shift ;;
        -h | --help) usage ;;
        -*) printf 'soak: unknown option %q\n' "$1" >&2; usage ;;
        *) MINUTES="$1" ;;
    esac
    shift
done

log() {
    printf 'soak %s: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

fail() {
    log "error: $*"
    exit 1
}

[[ "$ENGINE" == sqlite || "$ENGINE" == postgres ]] || fail "invalid --engine '$ENGINE'; use sqlite or postgres"
[[ "$MINUTES" =~ ^[1-9][0-9]*$ ]] || fail "invalid MINUTES '$MINUTES'; give whole minutes such as 10"
for value in "$CACHE_CAPACITY" "$CONCURRENCY" "$CONNECTIONS"; do
    [[ "$value" =~ ^[0-9]+$ ]] || fail "invalid number '$value' in the options"
done
command -v jq >/dev/null 2>&1 || fail "jq not found; install it (Debian: apt-get install jq)"
command -v curl >/dev/null 2>&1 || fail "curl not found; install it (Debian: apt-get install curl)"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tokend-soak.XXXXXXXX")"
OUTPUT_DIR="${OUTPUT_DIR:-$WORK_DIR/reports}"
mkdir -p "$OUTPUT_DIR"
# A state file of its own, so a PostgreSQL cluster that someone else
# started is left alone.
export TOKEND_PG_STATE="$WORK_DIR/postgres.state"
POSTGRES_STARTED=false
SERVER_PID=""
SAMPLER_PID=""

# Stops what this script started, by PID, and deletes the database, the
# secrets and the other work files. Reports in OUTPUT_DIR stay.
cleanup() {
    local status=$?
    if [[ -n "$SAMPLER_PID" ]]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
    fi
    stop_all_tokends
    if [[ "$POSTGRES_STARTED" == true ]]; then
        scripts/postgres.sh stop || log "could not stop PostgreSQL; state file $TOKEND_PG_STATE"
    fi
    find "$WORK_DIR" -mindepth 1 -maxdepth 1 ! -path "$OUTPUT_DIR" -exec rm -rf -- {} +
    log "reports in $OUTPUT_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Tools and build

GHZ=.tools/bin/ghz
if [[ ! -x "$GHZ" ]]; then
    log "ghz not found; running bench/install.sh"
    bench/install.sh >&2 || fail "bench/install.sh failed; see its output above"
fi

prepare_tokend "" "$WORK_DIR"

# ---------------------------------------------------------------------------
# Database, tokens and request data

DATA_DIR="$WORK_DIR/data"
mkdir -p "$DATA_DIR"
if [[ "$ENGINE" == postgres ]]; then
    DATABASE_URL="$(scripts/postgres.sh start)"
    POSTGRES_STARTED=true
    # Every command that hashes secrets must use one key, and an external
    # database has no data directory of its own to keep it in.
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$WORK_DIR/hashing.key")
    STORAGE_ARGS=(--database-url "$DATABASE_URL" --data-dir "$DATA_DIR" --hashing-key-file "$WORK_DIR/hashing.key")
else
    STORAGE_ARGS=(--data-dir "$DATA_DIR")
fi

SECRETS_FILE="$WORK_DIR/secrets.txt"
log "seeding $TOKENS tokens on $ENGINE"
timeout 1800 "$TOKEND" admin seed --count "$TOKENS" --secrets "$SECRETS" --secrets-file "$SECRETS_FILE" \
    "${STORAGE_ARGS[@]}" 2>>"$OUTPUT_DIR/admin.log" || fail "seeding failed; see $OUTPUT_DIR/admin.log"
VALIDATOR_TOKEN="$(timeout 60 "$TOKEND" admin create-token --owner svc --scope tokens:validate --ttl 1d \
    --output json "${STORAGE_ARGS[@]}" 2>>"$OUTPUT_DIR/admin.log" | jq -r .secret)"
[[ "$VALIDATOR_TOKEN" == tkn_* ]] || fail "creating the validator token failed; see $OUTPUT_DIR/admin.log"

# The metadata file keeps the caller's secret out of the process list.
METADATA="$WORK_DIR/metadata.json"
(umask 077 && jq -n --arg token "$VALIDATOR_TOKEN" '{authorization: ("Bearer " + $token)}' >"$METADATA")

# ghz sends the array round-robin: every second request carries one of the
# hot secrets, which stay cached, and the others walk the cold secrets,
# which outnumber the cache entries.
REQUESTS="$WORK_DIR/requests.json"
awk -v hot="$HOT_SECRETS" 'NR <= hot { hot_secret[NR - 1] = $0; next }
    { print hot_secret[(NR - hot - 1) % hot]; print }' "$SECRETS_FILE" |
    jq -R '{token: .}' | jq -s . >"$REQUESTS"

# ---------------------------------------------------------------------------
# Server

# Starts the server and waits until a Validate of the first seeded secret
# through the CLI succeeds.
start_server() {
    SERVER_LOG="$OUTPUT_DIR/server.log"
    start_tokend soak "$SERVER_LOG" "$VALIDATOR_TOKEN" "$(head -n 1 "$SECRETS_FILE")" \
        --cache-capacity "$CACHE_CAPACITY" "${STORAGE_ARGS[@]}"
    SERVER_PID=$STARTED_PID
    SERVER_PORT=$STARTED_PORT
    METRICS_PORT=$STARTED_METRICS_PORT
}

# Prints the sum of every sample of Prometheus metric $1 whose labels
# contain $2 (all samples when $2 is empty).
metric_sum() {
    curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" |
        awk -v name="$1" -v label="${2:-}" '
            ($1 == name || index($1, name "{") == 1) && (label == "" || index($1, label) > 0) { sum += $NF }
            END { printf "%.0f\n", sum }'
}

# Appends "seconds since start,RSS in KiB" every RSS_INTERVAL_SECONDS until
# the server exits or the sample count limit is reached.
sample_rss() {
    local started=$SECONDS sample rss
    printf 'seconds,rss_kib\n' >"$RSS_CSV"
    for ((sample = 0; sample < MAX_RSS_SAMPLES; sample++)); do
        rss="$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null)" || break
        [[ -n "$rss" ]] || break
        printf '%s,%s\n' "$((SECONDS - started))" "$rss" >>"$RSS_CSV"
        sleep "$RSS_INTERVAL_SECONDS"
    done
}

# ---------------------------------------------------------------------------
# Load

# Runs ghz for Validate with the soak's data and settings. $1 is the JSON
# report file and $2 the duration in seconds. The rest goes to ghz.
run_ghz() {
    local report="$1" seconds="$2"
    shift 2
    # The outer timeout bounds ghz even if a call hangs past its own limit.
    timeout "$((seconds + 120))" "$GHZ" --insecure --call "$METHOD" -D "$REQUESTS" -M "$METADATA" \
        -c "$CONCURRENCY" --connections "$CONNECTIONS" --timeout 10s --duration-stop wait \
        -z "${seconds}s" -O json -o "$report" "$@" "127.0.0.1:$SERVER_PORT" >/dev/null
}

# Prints the failed calls in a ghz JSON report: every status other than OK,
# plus errors that never got a status.
ghz_errors() {
    jq '([.statusCodeDistribution // {} | to_entries[] | select(.key != "OK") | .value] | add // 0)
        + ([.errorDistribution // {} | to_entries[] | .value] | add // 0)' "$1"
}

# Prints latency percentile $2 (50 or 99) of a ghz JSON report in ms.
ghz_percentile_ms() {
    jq --argjson p "$2" '[.latencyDistribution[] | select(.percentage == $p)][0].latency / 1e6' "$1"
}

# Prints the value at fraction $2 of the sorted numbers in file $1.
percentile() {
    awk -v p="$2" '{ value[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        i = int(NR * p + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
        print value[i] }' "$1"
}

start_server
RSS_CSV="$OUTPUT_DIR/rss.csv"
MAX_RSS_SAMPLES=$(((MINUTES * 60 + PEAK_SECONDS + 300) / RSS_INTERVAL_SECONDS))
sample_rss &
SAMPLER_PID=$!

# Results other than VALID are counted from here on, so the peak run is
# checked too.
VALID_BEFORE="$(metric_sum tokend_validate_results_total 'result="valid"')"
ALL_BEFORE="$(metric_sum tokend_validate_results_total)"
log "measuring the peak rate: ghz at full speed for $PEAK_SECONDS s (c=$CONCURRENCY, connections=$CONNECTIONS)"
PEAK_REPORT="$OUTPUT_DIR/peak.json"
run_ghz "$PEAK_REPORT" "$PEAK_SECONDS" || fail "the ghz peak run failed"
PEAK_RPS="$(jq '.rps | floor' "$PEAK_REPORT")"
PEAK_ERRORS="$(ghz_errors "$PEAK_REPORT")"
jq 'del(.details)' "$PEAK_REPORT" >"$PEAK_REPORT.tmp" && mv "$PEAK_REPORT.tmp" "$PEAK_REPORT"
RATE=$((PEAK_RPS * LOAD_PERCENT / 100))
((RATE >= 1)) || fail "the peak run reached $PEAK_RPS rps; too low to soak"
log "peak $PEAK_RPS rps with $PEAK_ERRORS errors; soaking at $RATE rps ($LOAD_PERCENT %) for $MINUTES min"

HITS_BEFORE="$(metric_sum tokend_cache_lookups_total 'outcome="hit"')"
MISSES_BEFORE="$(metric_sum tokend_cache_lookups_total 'outcome="miss"')"

# One ghz run per minute keeps each report small, shows drift minute by
# minute, and still lets the per-call latencies give exact percentiles.
LATENCIES="$WORK_DIR/latencies-ns.txt"
MINUTES_TSV="$OUTPUT_DIR/minutes.tsv"
: >"$LATENCIES"
printf 'minute\tcalls\trps\tp50_ms\tp99_ms\terrors\n' >"$MINUTES_TSV"
TOTAL_CALLS=0
TOTAL_ERRORS=0
for ((minute = 1; minute <= MINUTES; minute++)); do
    report="$OUTPUT_DIR/minute-$minute.json"
    run_ghz "$report" 60 --rps "$RATE" || fail "ghz failed in minute $minute"
    jq -r '.details[].latency' "$report" >>"$LATENCIES"
    jq 'del(.details)' "$report" >"$report.tmp" && mv "$report.tmp" "$report"
    calls="$(jq '.count' "$report")"
    errors="$(ghz_errors "$report")"
    TOTAL_CALLS=$((TOTAL_CALLS + calls))
    TOTAL_ERRORS=$((TOTAL_ERRORS + errors))
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$minute" "$calls" "$(jq '.rps | floor' "$report")" \
        "$(ghz_percentile_ms "$report" 50)" "$(ghz_percentile_ms "$report" 99)" "$errors" >>"$MINUTES_TSV"
    log "minute $minute/$MINUTES: $calls calls, $errors errors, p50 $(ghz_percentile_ms "$report" 50) ms, p99 $(ghz_percentile_ms "$report" 99) ms, RSS $(tail -n 1 "$RSS_CSV" | cut -d, -f2) KiB"
done

NOT_VALID=$(($(metric_sum tokend_validate_results_total) - ALL_BEFORE - ($(metric_sum tokend_validate_results_total 'result="valid"') - VALID_BEFORE)))
HITS=$(($(metric_sum tokend_cache_lookups_total 'outcome="hit"') - HITS_BEFORE))
MISSES=$(($(metric_sum tokend_cache_lookups_total 'outcome="miss"') - MISSES_BEFORE))

kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

# ---------------------------------------------------------------------------
# Report

sort -n -o "$LATENCIES" "$LATENCIES"
P50_MS="$(awk -v ns="$(percentile "$LATENCIES" 0.50)" 'BEGIN { printf "%.3f", ns / 1e6 }')"
P99_MS="$(awk -v ns="$(percentile "$LATENCIES" 0.99)" 'BEGIN { printf "%.3f", ns / 1e6 }')"

# Warm-up is the first third of the soak, and at least one minute, after
# the peak run. The token cache, the database pool and, on SQLite, the page
# cache of each pooled connection fill during it. In soak runs of 5 and 10
# minutes on a 2-core machine, RSS rose for about 3 minutes on PostgreSQL
# before it levelled off.
WARMUP_SECONDS=$((PEAK_SECONDS + (MINUTES * 20 > 60 ? MINUTES * 20 : 60)))
# The sample at half the soak gives the growth rate over the second half.
HALF_SECONDS=$((PEAK_SECONDS + MINUTES * 30))
read -r RSS_FIRST RSS_MIN RSS_MAX RSS_LAST RSS_BASE RSS_SLOPE RSS_AFTER_WARMUP <<<"$(awk -F, -v warmup="$WARMUP_SECONDS" -v half="$HALF_SECONDS" '
    NR == 1 { next }
    { if (first == "") first = $2; last = $2; last_time = $1
      if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2
      if (base == "" && $1 >= warmup) base = $2
      if ($1 >= warmup) after++
      if (half_rss == "" && $1 >= half) { half_rss = $2; half_time = $1 } }
    END {
      if (base == "") base = last
      slope = (half_rss != "" && last_time > half_time) ? (last - half_rss) / 1024 / ((last_time - half_time) / 60) : 0
      printf "%s %s %s %s %s %.2f %d\n", first, min, max, last, base, slope, after }' "$RSS_CSV")"
# Comparing needs two samples after warm-up. A 1-minute soak ends at the
# first one, so its memory is not judged.
if [[ "$RSS_AFTER_WARMUP" -lt 2 ]]; then
    RSS_FLAT="not judged"
    RSS_VERDICT="not judged (fewer than two samples after warm-up; soak 2 minutes or more)"
else
    RSS_FLAT="$(awk -v last="$RSS_LAST" -v base="$RSS_BASE" -v limit="$RSS_GROWTH_LIMIT" \
        'BEGIN { print (last <= base * limit ? "yes" : "no") }')"
    RSS_VERDICT="$RSS_FLAT (last <= $RSS_GROWTH_LIMIT x after warm-up at $WARMUP_SECONDS s)"
fi
mib() {
    awk -v kib="$1" 'BEGIN { printf "%.1f", kib / 1024 }'
}

printf '\nSoak: %s, %s min at %s rps (%s %% of the peak %s rps), c=%s, connections=%s, cache capacity %s\n' \
    "$ENGINE" "$MINUTES" "$RATE" "$LOAD_PERCENT" "$PEAK_RPS" "$CONCURRENCY" "$CONNECTIONS" "$CACHE_CAPACITY"
printf '  total calls        %s\n' "$TOTAL_CALLS"
printf '  errors             %s (peak run: %s)\n' "$TOTAL_ERRORS" "$PEAK_ERRORS"
printf '  not VALID          %s\n' "$NOT_VALID"
printf '  latency            p50 %s ms, p99 %s ms\n' "$P50_MS" "$P99_MS"
printf '  cache lookups      %s hits, %s misses (the caller token is one hit per call)\n' "$HITS" "$MISSES"
printf '  RSS MiB            first %s, min %s, max %s, last %s, after warm-up %s\n' \
    "$(mib "$RSS_FIRST")" "$(mib "$RSS_MIN")" "$(mib "$RSS_MAX")" "$(mib "$RSS_LAST")" "$(mib "$RSS_BASE")"
printf '  RSS flat           %s; second half %s MiB/min\n' "$RSS_VERDICT" "$RSS_SLOPE"
printf '  per minute         %s\n' "$MINUTES_TSV"
printf '  RSS samples        %s\n\n' "$RSS_CSV"

FAILED=false
if [[ "$TOTAL_ERRORS" -ne 0 || "$PEAK_ERRORS" -ne 0 ]]; then
    log "FAILED: $TOTAL_ERRORS calls failed in the soak and $PEAK_ERRORS in the peak run"
    FAILED=true
fi
if [[ "$NOT_VALID" -ne 0 ]]; then
    log "FAILED: $NOT_VALID Validate calls answered other than VALID"
    FAILED=true
fi
if [[ "$RSS_FLAT" == no ]]; then
    log "FAILED: RSS grew from $(mib "$RSS_BASE") MiB after warm-up to $(mib "$RSS_LAST") MiB"
    FAILED=true
fi
[[ "$FAILED" == false ]] || exit 1
log "passed"
