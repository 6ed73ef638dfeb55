#!/usr/bin/env bash
# Benchmarks tokend on loopback with ghz and pgbench, and prints one
# markdown table of throughput, latency and server memory.
#
#   bench/run.sh            # full run: 10,000 and 1,000,000 tokens
#   bench/run.sh --quick    # smoke run: 2,000 tokens, 2 s per scenario
#
# For each engine (SQLite, PostgreSQL) and each table size, the script
# seeds a fresh database with `tokend admin seed`, starts `tokend serve` on
# 127.0.0.1, and runs every scenario with the same ghz settings
# (concurrency, connections, duration). It exits non-zero when any ghz or
# pgbench run reports an error or a Validate returns anything but VALID.
# docs/benchmarks.md explains the scenarios and the latest results.
#
# Options (each also has an environment variable):
#   --quick               BENCH_QUICK=1        small table, short runs
#   --engines LIST        BENCH_ENGINES        sqlite,postgres
#   --sizes LIST          BENCH_SIZES          tokens to seed, such as 10000,1000000
#   --duration D          BENCH_DURATION       length of each measured run, such as 10s
#   --concurrency N       BENCH_CONCURRENCY    ghz workers and pgbench clients
#   --connections N       BENCH_CONNECTIONS    HTTP/2 connections that ghz opens
#   --output-dir DIR      BENCH_OUTPUT_DIR     where reports go (default: a new
#                                              directory under ${TMPDIR:-/tmp})
#   --binary PATH         BENCH_TOKEND_BINARY  benchmark this tokend build instead
#                                              of building target/release/tokend
#
# Needs ghz (installed with bench/install.sh when missing, which needs Go),
# jq, curl, and for PostgreSQL the server programs and pgbench from
# Debian's postgresql package. Every server it starts listens on 127.0.0.1
# only and is stopped by PID when the script exits. Databases are deleted
# at the end and reports are kept.
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
# shellcheck source=bench/lib.sh
. "$TOKEND_ROOT/bench/lib.sh"
cd "$TOKEND_ROOT"

QUICK="${BENCH_QUICK:-0}"
ENGINES="${BENCH_ENGINES:-}"
SIZES="${BENCH_SIZES:-}"
DURATION="${BENCH_DURATION:-}"
CONCURRENCY="${BENCH_CONCURRENCY:-16}"
CONNECTIONS="${BENCH_CONNECTIONS:-4}"
OUTPUT_DIR="${BENCH_OUTPUT_DIR:-}"
BINARY="${BENCH_TOKEND_BINARY:-}"

# Seeded tokens are spread over this many owners, so the listed owner
# bench-0 has a tenth of the table.
OWNERS=10
SEED_BATCH=1000
# Distinct secrets that the cache-miss scenarios and pgbench cycle through.
MISS_SAMPLE=1000
# Distinct secrets that the cache-hit scenario repeats.
HIT_SAMPLE=10
# Distinct secrets validated once each to fill the cache to its default
# capacity for the memory measurement, capped by the table size.
CACHE_FILL_MAX=100000
# The capacity of the "tiny cache" miss scenario: enough to keep the
# caller's own token cached, far too small for the 1000 validated secrets.
TINY_CACHE_CAPACITY=10
LIST_PAGE_SIZE=50

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --engines) ENGINES="${2:?--engines needs a value}"; shift ;;
        --sizes) SIZES="${2:?--sizes needs a value}"; shift ;;
        --duration) DURATION="${2:?--duration needs a value}"; shift ;;
        --concurrency) CONCURRENCY="${2:?--concurrency needs a value}"; shift ;;
        --connections) CONNECTIONS="${2:?--connections needs a value}"; shift ;;
        --output-dir) OUTPUT_DIR="${2:?--output-dir needs a value}"; shift ;;
        --binary) BINARY="${2:?--binary needs a value}"; shift ;;
        -h | --help) usage ;;
        *) printf 'bench: unknown argument %q\n' "$1" >&2; usage ;;
    esac
    shift
done

if [[ "$QUICK" == 1 ]]; then
    SIZES="${SIZES:-2000}"
    DURATION="${DURATION:-2s}"
    WARMUP_REQUESTS=200
else
    SIZES="${SIZES:-10000,1000000}"
    DURATION="${DURATION:-10s}"
    WARMUP_REQUESTS=2000
fi
ENGINES="${ENGINES:-sqlite,postgres}"
IFS=, read -r -a ENGINE_LIST <<<"$ENGINES"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"

log() {
    printf 'bench %s: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

fail() {
    log "error: $*"
    exit 1
}

for engine in "${ENGINE_LIST[@]}"; do
    [[ "$engine" == sqlite || "$engine" == postgres ]] ||
        fail "unknown engine '$engine' in --engines; use sqlite, postgres or both"
done
for size in "${SIZE_LIST[@]}"; do
    [[ "$size" =~ ^[1-9][0-9]*$ && "$size" -ge 100 ]] ||
        fail "invalid size '$size' in --sizes; use whole numbers of at least 100"
done
[[ "$DURATION" =~ ^[1-9][0-9]*s$ ]] || fail "invalid --duration '$DURATION'; use whole seconds such as 10s"
[[ "$CONCURRENCY" =~ ^[1-9][0-9]*$ ]] || fail "invalid --concurrency '$CONCURRENCY'; use a whole number of at least 1"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ && "$CONNECTIONS" -le "$CONCURRENCY" ]] ||
    fail "invalid --connections '$CONNECTIONS'; use a whole number from 1 to --concurrency ($CONCURRENCY), because ghz spreads its workers over the connections"
DURATION_SECONDS="${DURATION%s}"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tokend-bench.XXXXXXXX")"
if [[ -z "$OUTPUT_DIR" ]]; then
    OUTPUT_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tokend-bench-reports.XXXXXXXX")"
fi
mkdir -p "$OUTPUT_DIR"
RESULTS="$OUTPUT_DIR/results.tsv"
: >"$RESULTS"
# Each run gets its own PostgreSQL state file, so a cluster that someone
# else started is left alone.
export TOKEND_PG_STATE="$WORK_DIR/postgres.state"
POSTGRES_STARTED=false
SERVER_PID=""
FAILURES=0
COUNT_PG_WRITES=false
LOADS=()
RUN_START=$SECONDS

# Stops the server and the PostgreSQL cluster that this script started, and
# deletes the work directory with the databases and secrets. Reports in
# OUTPUT_DIR stay.
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

# ---------------------------------------------------------------------------
# Tools and build

GHZ="$(command -v ghz || true)"
if [[ -z "$GHZ" ]]; then
    # A fresh clone has no ghz yet; installing it here keeps the benchmark
    # one command.
    log "ghz not found; running bench/install.sh"
    bench/install.sh >&2 || fail "bench/install.sh failed; see its output above"
    GHZ="$TOKEND_ROOT/.tools/bin/ghz"
fi
command -v jq >/dev/null 2>&1 || fail "jq not found; run bench/install.sh for the hint"
command -v curl >/dev/null 2>&1 || fail "curl not found; install it (Debian: apt-get install curl)"
PG_BINDIR=""
if [[ ",$ENGINES," == *,postgres,* ]]; then
    PG_BINDIR="$(tokend_pg_bindir)" || fail "PostgreSQL not found; run scripts/install-tools.sh"
    [[ -x "$PG_BINDIR/pgbench" ]] || fail "pgbench missing from $PG_BINDIR; run bench/install.sh for the hint"
fi

prepare_tokend "$BINARY" "$WORK_DIR"

# ---------------------------------------------------------------------------
# Ports and the server

# Starts `tokend serve` with the storage flags of the current database and
# the given extra flags, and waits until a Validate of the first seeded
# secret through the CLI succeeds.
start_server() {
    local name="$1"
    shift
    SERVER_LOG="$OUTPUT_DIR/$COMBO-server-$name.log"
    start_tokend "$name" "$SERVER_LOG" "$VALIDATOR_TOKEN" "$(head -n 1 "$SECRETS_FILE")" "${STORAGE_ARGS[@]}" "$@"
    SERVER_PID=$STARTED_PID
    SERVER_PORT=$STARTED_PORT
    METRICS_PORT=$STARTED_METRICS_PORT
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    stop_tokend "$SERVER_PID"
    SERVER_PID=""
}

# Prints the server's resident memory in MiB.
server_rss_mib() {
    awk '$1 == "VmRSS:" { printf "%.1f\n", $2 / 1024 }' "/proc/$SERVER_PID/status"
}

scrape_metrics() {
    curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics"
}

# Prints the sum of every sample of metric $2 in the Prometheus text $1
# whose labels contain $3 (all samples when $3 is empty).
metric_sum() {
    awk -v name="$2" -v label="${3:-}" '
        ($1 == name || index($1, name "{") == 1) && (label == "" || index($1, label) > 0) { sum += $NF }
        END { printf "%.0f\n", sum }' <<<"$1"
}

# ---------------------------------------------------------------------------
# PostgreSQL helpers

# Sets log_statement on the whole cluster. With 'mod' the server log gets
# one line per INSERT, UPDATE or DELETE, so write statements can be counted
# exactly. The statistics views would lag by up to several seconds.
pg_log_statement() {
    psql_run --dbname="$PG_ADMIN_URL" -c "ALTER SYSTEM SET log_statement = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
    # Backends apply the reload before their next statement. The pause
    # gives idle pool connections time to pick it up too.
    sleep 0.5
}

pg_server_log() {
    local dir
    # The state file is written by scripts/postgres.sh with printf %q.
    # shellcheck source=/dev/null
    dir="$(. "$TOKEND_PG_STATE" && printf '%s' "$PG_DIR")"
    printf '%s/server.log\n' "$dir"
}

pg_write_statements() {
    grep -cE 'LOG: +(statement|execute [^:]*): *(INSERT|UPDATE|DELETE)' "$(pg_server_log)" || true
}

# ---------------------------------------------------------------------------
# Recording results

# Appends one row to the results file:
#   engine size scenario rps p50_ms p99_ms rss_mib requests errors note
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

# Runs ghz against the current server. $1 is the report file, $2 the
# method, $3 the data file and $4 the metadata file or "" for none. The
# rest selects the length: -z 10s or -n 1000. The script never passes -x,
# because ghz v0.120.0 then ignores -n and runs for the whole -x duration.
ghz_call() {
    local report="$1" method="$2" data="$3" metadata="$4"
    shift 4
    local args=(--insecure --call "$method" -D "$data" -c "$CONCURRENCY" --connections "$CONNECTIONS"
        --duration-stop wait --timeout 10s -O json -o "$report")
    if [[ -n "$metadata" ]]; then
        args+=(-M "$metadata")
    fi
    # The outer timeout bounds ghz even if a call hangs past its own limits.
    timeout "${GHZ_LIMIT_SECONDS:-$((DURATION_SECONDS + 120))}" "$GHZ" "${args[@]}" "$@" "127.0.0.1:$SERVER_PORT" >/dev/null
    # The per-call details and the request data make a report tens of
    # megabytes, and the table needs only the summary. The data and
    # metadata also contain the test secrets and the caller's token.
    jq 'del(.details, .options.data, .options.metadata)' "$report" >"$report.tmp" && mv "$report.tmp" "$report"
}

# Prints latency percentile $2 of the ghz JSON report $1 in milliseconds,
# rounded to microseconds.
ghz_percentile() {
    jq --argjson p "$2" '[.latencyDistribution[] | select(.percentage == $p)][0].latency / 1e3 | round / 1000' "$1"
}

# Counts the failed calls in a ghz JSON report. ghz lists a failed call
# both under its status code and under its error message, so the count is
# the larger of the two sums. That also covers errors without a status.
ghz_errors() {
    jq '[([.statusCodeDistribution // {} | to_entries[] | select(.key != "OK") | .value] | add // 0),
        ([.errorDistribution // {} | to_entries[] | .value] | add // 0)] | max' "$1"
}

# Warms up, then measures one scenario for DURATION and records it with the
# server's RSS at the end. $5 is an optional note for the table.
measure() {
    local scenario="$1" method="$2" data="$3" metadata="$4" note="${5:-}"
    local report="$OUTPUT_DIR/$COMBO-$scenario.json" before after errors invalid

    ghz_call "$OUTPUT_DIR/$COMBO-$scenario-warmup.json" "$method" "$data" "$metadata" -n "$WARMUP_REQUESTS" ||
        fail "ghz warm-up of $scenario failed"
    if [[ "$COUNT_PG_WRITES" == true ]]; then
        LAST_PG_WRITES="$(pg_write_statements)"
    fi
    before="$(scrape_metrics)"
    ghz_call "$report" "$method" "$data" "$metadata" -z "$DURATION" || fail "ghz run of $scenario failed"
    after="$(scrape_metrics)"
    if [[ "$COUNT_PG_WRITES" == true ]]; then
        LAST_PG_WRITES=$(($(pg_write_statements) - LAST_PG_WRITES))
    fi
    LAST_SECONDS="$(jq '.total / 1e9' "$report")"
    LAST_RSS="$(server_rss_mib)"
    LAST_BEFORE="$before"
    LAST_AFTER="$after"

    errors="$(ghz_errors "$report")"
    invalid=$(($(metric_sum "$after" tokend_validate_results_total) - $(metric_sum "$after" tokend_validate_results_total 'result="valid"') -
        $(metric_sum "$before" tokend_validate_results_total) + $(metric_sum "$before" tokend_validate_results_total 'result="valid"')))
    if [[ "$errors" -ne 0 ]]; then
        log "FAILED: $scenario had $errors failed calls: $(jq -c '.statusCodeDistribution, .errorDistribution' "$report" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
    fi
    if [[ "$invalid" -ne 0 ]]; then
        log "FAILED: $scenario got $invalid Validate results other than VALID"
        FAILURES=$((FAILURES + 1))
    fi
    record "$ENGINE" "$SIZE" "$scenario" \
        "$(jq '.rps | floor' "$report")" \
        "$(ghz_percentile "$report" 50)" "$(ghz_percentile "$report" 99)" \
        "$LAST_RSS" "$(jq '.count' "$report")" "$errors" "$note"
    log "$scenario: $(jq '.rps | floor' "$report") rps, p50 $(ghz_percentile "$report" 50) ms, p99 $(ghz_percentile "$report" 99) ms, RSS $LAST_RSS MiB, $errors errors"
}

# Prints cache lookups that went to the database, per call, during the
# last measured run.
misses_per_call() {
    local calls="$1" misses
    misses=$(($(metric_sum "$LAST_AFTER" tokend_cache_lookups_total 'outcome="miss"') - $(metric_sum "$LAST_BEFORE" tokend_cache_lookups_total 'outcome="miss"')))
    awk -v m="$misses" -v c="$calls" 'BEGIN { printf "%.2f\n", (c > 0 ? m / c : 0) }'
}

# Prints $1 divided by the length of the last measured run.
per_second() {
    awk -v n="$1" -v s="$LAST_SECONDS" 'BEGIN { printf "%.2f\n", n / s }'
}

last_count() {
    awk -F'\t' 'END { print $8 }' "$RESULTS"
}

# Rewrites the note column of the last results row.
set_last_note() {
    local tmp="$RESULTS.tmp"
    awk -F'\t' -v OFS='\t' -v note="$1" 'NR == n { $10 = note } { print }' n="$(wc -l <"$RESULTS")" "$RESULTS" >"$tmp"
    mv "$tmp" "$RESULTS"
}

# ---------------------------------------------------------------------------
# Data files

# Writes a ghz data file: a JSON array of ValidateRequest messages, one per
# secret read from standard input. ghz sends the array round-robin.
validate_requests() {
    jq -R '{token: .}' | jq -s .
}

write_auth_metadata() {
    jq -n --arg token "$1" '{authorization: ("Bearer " + $token)}' >"$2"
}

create_token() {
    local owner="$1" scope="$2"
    "$TOKEND" admin create-token --owner "$owner" --name "bench $scope" --scope "$scope" \
        --ttl 1d --output json "${STORAGE_ARGS[@]}" 2>>"$OUTPUT_DIR/$COMBO-admin.log" | jq -r .secret
}

# Pages through bench-0's tokens with the CLI and prints the page token of
# the position nine tenths into the listing.
deep_page_token() {
    local per_owner="$1" walk_size pages page token=""
    walk_size=$((per_owner >= 10000 ? 1000 : per_owner / 10))
    ((walk_size >= 1)) || walk_size=1
    pages=$((per_owner * 9 / 10 / walk_size))
    for ((page = 0; page < pages; page++)); do
        token="$(TOKEND_TOKEN="$ADMIN_TOKEN" timeout 60 "$TOKEND" token list --server "http://127.0.0.1:$SERVER_PORT" \
            --owner bench-0 --page-size "$walk_size" --page-token "$token" --output json | jq -r .next_page_token)"
        [[ -n "$token" ]] || fail "bench-0's listing ended after $page pages of $walk_size"
    done
    printf '%s\n' "$token"
}

# ---------------------------------------------------------------------------
# One engine at one size

seed() {
    local secrets="$1" started
    started=$SECONDS
    timeout 3600 "$TOKEND" admin seed --count "$SIZE" --owners "$OWNERS" --batch "$SEED_BATCH" \
        --secrets-file "$SECRETS_FILE" --secrets "$secrets" "${STORAGE_ARGS[@]}" \
        2>>"$OUTPUT_DIR/$COMBO-admin.log" || fail "seeding $SIZE tokens on $ENGINE failed; see $OUTPUT_DIR/$COMBO-admin.log"
    SEED_SECONDS=$((SECONDS - started))
    log "seeded $SIZE tokens in $SEED_SECONDS s"
    if [[ "$ENGINE" == postgres ]]; then
        # Planner statistics and the visibility map, as a database that has
        # run a while would have them, so autovacuum does not start mid-run.
        started=$SECONDS
        psql_run --dbname="$DATABASE_URL" -c "VACUUM ANALYZE tokens" >/dev/null
        log "VACUUM ANALYZE took $((SECONDS - started)) s"
    fi
    record "$ENGINE" "$SIZE" seed - - - - "$SIZE" 0 "seed ${SEED_SECONDS}s"
}

run_pgbench() {
    local script="$WORK_DIR/digest-lookup.sql" logs="$WORK_DIR/pgbench-$COMBO" output tps p50 p99 failed
    # A fixed table of digests sampled from the whole table, numbered 1..N,
    # so that each pgbench transaction is one statement: a primary-key probe
    # of the small table feeding one lookup on the unique digest index.
    psql_run --dbname="$DATABASE_URL" \
        -c "DROP TABLE IF EXISTS bench_digests" \
        -c "CREATE TABLE bench_digests (n integer PRIMARY KEY, digest bytea NOT NULL)" \
        -c "INSERT INTO bench_digests SELECT row_number() OVER (), digest FROM (SELECT digest FROM tokens ORDER BY random() LIMIT $MISS_SAMPLE) AS sample" \
        -c "ANALYZE bench_digests" >/dev/null
    # The column list and LIMIT match the query that tokend sends for a
    # cache miss.
    cat >"$script" <<EOF
\\set r random(1, $MISS_SAMPLE)
SELECT id, owner, name, digest, display_hint, scopes, created_at, expires_at, last_used_at, revoked_at FROM tokens WHERE digest = (SELECT digest FROM bench_digests WHERE n = :r) LIMIT 1;
EOF
    mkdir -p "$logs"
    output="$(cd "$logs" && timeout "$((DURATION_SECONDS + 120))" "$PG_BINDIR/pgbench" --no-vacuum --protocol=prepared \
        --client="$CONCURRENCY" --jobs=2 --time="$DURATION_SECONDS" --file="$script" --log --log-prefix=txn \
        "$DATABASE_URL" 2>&1)" || {
        printf '%s\n' "$output" >&2
        fail "pgbench failed; output above"
    }
    printf '%s\n' "$output" >"$OUTPUT_DIR/$COMBO-pgbench.txt"
    tps="$(awk '/^tps = / { printf "%d\n", $3; exit }' <<<"$output")"
    failed="$(awk '/^number of failed transactions:/ { print $5; exit }' <<<"$output")"
    # Per-transaction logs have the latency in microseconds in column 3.
    read -r p50 p99 < <(cat "$logs"/txn.* | awk '{ print $3 }' | sort -n | awk '
        { v[NR] = $1 }
        END {
            i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
            i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
            printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
        }')
    rm -rf -- "$logs"
    if [[ -n "$failed" && "$failed" != 0 ]]; then
        log "FAILED: pgbench reported $failed failed transactions"
        FAILURES=$((FAILURES + 1))
    fi
    record "$ENGINE" "$SIZE" pgbench "$tps" "$p50" "$p99" - "$(awk '/^number of transactions actually processed:/ { print $6; exit }' <<<"$output")" "${failed:-0}" "-M prepared, $CONCURRENCY clients"
    log "pgbench: $tps tps, p50 $p50 ms, p99 $p99 ms"
}

bench_one() {
    ENGINE="$1"
    SIZE="$2"
    COMBO="$ENGINE-$SIZE"
    local data_dir="$WORK_DIR/data/$COMBO" secrets_count fill_count per_owner
    local hit_data="$WORK_DIR/$COMBO-hit.json" miss_data="$WORK_DIR/$COMBO-miss.json" fill_data="$WORK_DIR/$COMBO-fill.json"
    local validator_meta="$WORK_DIR/$COMBO-validator.json" admin_meta="$WORK_DIR/$COMBO-admin.json"
    local flushes rows note

    LOADS+=("$COMBO $(cut -d' ' -f1-3 /proc/loadavg);")
    log "=== $ENGINE, $SIZE tokens (load average $(cut -d' ' -f1-3 /proc/loadavg)) ==="
    mkdir -p "$data_dir"
    SECRETS_FILE="$WORK_DIR/$COMBO-secrets.txt"
    if [[ "$ENGINE" == postgres ]]; then
        psql_run --dbname="$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS bench_$SIZE" -c "CREATE DATABASE bench_$SIZE" >/dev/null
        DATABASE_URL="${PG_ADMIN_URL%/*}/bench_$SIZE"
        # Every command that hashes secrets must use one key, and with an
        # external database there is no shared data directory to keep it in.
        STORAGE_ARGS=(--database-url "$DATABASE_URL" --data-dir "$data_dir" --hashing-key-file "$WORK_DIR/hashing.key")
    else
        STORAGE_ARGS=(--data-dir "$data_dir")
    fi

    fill_count=$((SIZE < CACHE_FILL_MAX ? SIZE : CACHE_FILL_MAX))
    secrets_count=$fill_count
    seed "$secrets_count"
    VALIDATOR_TOKEN="$(create_token bench-validator tokens:validate)"
    ADMIN_TOKEN="$(create_token bench-admin tokens:admin)"
    write_auth_metadata "$VALIDATOR_TOKEN" "$validator_meta"
    write_auth_metadata "$ADMIN_TOKEN" "$admin_meta"

    head -n "$HIT_SAMPLE" "$SECRETS_FILE" | validate_requests >"$hit_data"
    # Every k-th secret, so the miss sample spans the whole table.
    awk -v k="$((secrets_count / MISS_SAMPLE > 1 ? secrets_count / MISS_SAMPLE : 1))" -v max="$MISS_SAMPLE" \
        '(NR - 1) % k == 0 && n < max { print; n++ }' "$SECRETS_FILE" | validate_requests >"$miss_data"
    validate_requests <"$SECRETS_FILE" >"$fill_data"
    jq -n '{service: ""}' >"$WORK_DIR/health.json"

    # Server with the default cache: the RPC-stack ceiling, cache hits and List.
    start_server default
    measure health grpc.health.v1.Health/Check "$WORK_DIR/health.json" "" "no authentication, no database"

    if [[ "$ENGINE" == postgres ]]; then
        pg_log_statement mod
        COUNT_PG_WRITES=true
    fi
    measure validate-hit tokens.v1.TokenService/Validate "$hit_data" "$validator_meta"
    COUNT_PG_WRITES=false
    flushes=$(($(metric_sum "$LAST_AFTER" tokend_last_used_flushes_total) - $(metric_sum "$LAST_BEFORE" tokend_last_used_flushes_total)))
    rows=$(($(metric_sum "$LAST_AFTER" tokend_last_used_tokens_total) - $(metric_sum "$LAST_BEFORE" tokend_last_used_tokens_total)))
    note="$(per_second "$flushes") last-used flushes/s (metrics, $rows rows)"
    if [[ "$ENGINE" == postgres ]]; then
        pg_log_statement none
        note="$note; $(per_second "$LAST_PG_WRITES") write statements/s (PostgreSQL log)"
    fi
    set_last_note "$note; $(misses_per_call "$(last_count)") DB lookups/call"

    per_owner=$((SIZE / OWNERS))
    jq -n --argjson size "$LIST_PAGE_SIZE" '{owner: "bench-0", page_size: $size}' >"$WORK_DIR/$COMBO-list-first.json"
    jq -n --argjson size "$LIST_PAGE_SIZE" --arg token "$(deep_page_token "$per_owner")" \
        '{owner: "bench-0", page_size: $size, page_token: $token}' >"$WORK_DIR/$COMBO-list-deep.json"
    measure list-first tokens.v1.TokenService/List "$WORK_DIR/$COMBO-list-first.json" "$admin_meta" "owner bench-0 ($per_owner tokens), $LIST_PAGE_SIZE per page"
    measure list-deep tokens.v1.TokenService/List "$WORK_DIR/$COMBO-list-deep.json" "$admin_meta" "page starting 9/10 into bench-0's tokens"
    stop_server

    # Cache off: every call looks up both the caller's token and the
    # validated token in the database.
    start_server no-cache --cache-capacity 0
    measure validate-miss tokens.v1.TokenService/Validate "$miss_data" "$validator_meta"
    set_last_note "--cache-capacity 0, $MISS_SAMPLE secrets; $(misses_per_call "$(last_count)") DB lookups/call"
    stop_server

    # A tiny cache keeps the caller's token, so each call does one lookup.
    start_server tiny-cache --cache-capacity "$TINY_CACHE_CAPACITY"
    measure validate-miss-tiny tokens.v1.TokenService/Validate "$miss_data" "$validator_meta"
    set_last_note "--cache-capacity $TINY_CACHE_CAPACITY, $MISS_SAMPLE secrets; $(misses_per_call "$(last_count)") DB lookups/call"
    stop_server

    if [[ "$ENGINE" == postgres ]]; then
        run_pgbench
    fi

    # Default capacity with a TTL longer than the run, so every validated
    # secret is still cached when RSS is read.
    start_server cache-fill --cache-ttl 10m
    local fill_before fill_after entries rss
    fill_before="$(scrape_metrics)"
    GHZ_LIMIT_SECONDS=720 ghz_call "$OUTPUT_DIR/$COMBO-cache-fill.json" tokens.v1.TokenService/Validate \
        "$fill_data" "$validator_meta" -n "$fill_count" || fail "ghz cache fill failed"
    # The cache-size gauge is sampled once per health interval (1 s).
    sleep 1.5
    fill_after="$(scrape_metrics)"
    rss="$(server_rss_mib)"
    entries="$(metric_sum "$fill_after" tokend_cache_entries)"
    local fill_errors
    fill_errors="$(ghz_errors "$OUTPUT_DIR/$COMBO-cache-fill.json")"
    if [[ "$fill_errors" -ne 0 ]]; then
        log "FAILED: cache fill had $fill_errors failed calls"
        FAILURES=$((FAILURES + 1))
    fi
    record "$ENGINE" "$SIZE" cache-fill "$(jq '.rps | floor' "$OUTPUT_DIR/$COMBO-cache-fill.json")" \
        "$(ghz_percentile "$OUTPUT_DIR/$COMBO-cache-fill.json" 50)" "$(ghz_percentile "$OUTPUT_DIR/$COMBO-cache-fill.json" 99)" \
        "$rss" "$(jq '.count' "$OUTPUT_DIR/$COMBO-cache-fill.json")" "$fill_errors" "$fill_count distinct secrets once each; $entries cache entries at the end"
    log "cache-fill: $entries entries, RSS $rss MiB (misses before: $(metric_sum "$fill_before" tokend_cache_lookups_total 'outcome="miss"'))"
    stop_server

    # Generate last, because it adds rows to the table.
    start_server generate
    # ghz fills in the template per call. Spreading the new tokens over
    # 1000 owners keeps each owner below the server's default cap of 1000
    # active tokens.
    jq -n '{name: "bench generate", owner: "bench-generate-{{mod .RequestNumber 1000}}"}' >"$WORK_DIR/generate.json"
    measure generate tokens.v1.TokenService/Generate "$WORK_DIR/generate.json" "$admin_meta" "1000 owners in turn"
    stop_server

    rm -rf -- "$data_dir"
    if [[ "$ENGINE" == postgres ]]; then
        psql_run --dbname="$PG_ADMIN_URL" -c "DROP DATABASE bench_$SIZE" >/dev/null
    fi
}

# ---------------------------------------------------------------------------
# Report

# Prints field $4 (rps), $5 (p50) or $6 (p99) of a results row.
value() {
    awk -F'\t' -v e="$1" -v s="$2" -v sc="$3" -v col="$4" '$1 == e && $2 == s && $3 == sc { print $col; exit }' "$RESULTS"
}

# Prints "a/b = r (target OP t: met|NOT met)".
ratio_line() {
    local label="$1" numerator="$2" denominator="$3" op="$4" target="$5"
    awk -v l="$label" -v a="$numerator" -v b="$denominator" -v op="$op" -v t="$target" 'BEGIN {
        if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) { printf "| %s | n/a | %s %s | not measured |\n", l, op, t; exit }
        r = a / b
        met = (op == ">=") ? (r >= t) : (r <= t)
        printf "| %s | %.2f (%s / %s) | %s %s | %s |\n", l, r, a, b, op, t, (met ? "met" : "NOT met")
    }'
}

# Prints what was measured, where and with which settings.
print_header() {
    printf '# tokend benchmark\n\n'
    printf -- '- date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- machine: %s CPUs (%s), %s memory\n' "$(nproc)" \
        "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)" "$(free -h | awk '/^Mem:/ { print $2 }')"
    printf -- '- tokend: %s\n' "$BINARY_NAME"
    printf -- '- ghz %s: -c %s --connections %s, -z %s per scenario after %s warm-up calls\n' \
        "$(go version -m "$GHZ" 2>/dev/null | awk '$1 == "mod" { print $3; exit }')" "$CONCURRENCY" "$CONNECTIONS" "$DURATION" "$WARMUP_REQUESTS"
    if [[ -n "$PG_BINDIR" ]]; then
        printf -- '- PostgreSQL and pgbench %s\n' "$("$PG_BINDIR/pgbench" --version | awk '{ print $3 }')"
    fi
    printf -- '- load average (1, 5, 15 min) before each engine and size: %s\n' "${LOADS[*]}"
    printf -- '- run time: %s s\n' "$((SECONDS - RUN_START))"
}

print_report() {
    local engine size largest smallest
    print_header
    printf '\n| Engine | Tokens | Scenario | rps | p50 ms | p99 ms | RSS MiB | Calls | Errors | Notes |\n'
    printf '|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n'
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$RESULTS"

    printf '\n| Ratio | Measured | Target | Result |\n|---|---|---|---|\n'
    smallest="${SIZE_LIST[0]}"
    largest="${SIZE_LIST[${#SIZE_LIST[@]} - 1]}"
    for engine in "${ENGINE_LIST[@]}"; do
        for size in "${SIZE_LIST[@]}"; do
            ratio_line "$engine $size: Validate-hit rps / Health rps" "$(value "$engine" "$size" validate-hit 4)" "$(value "$engine" "$size" health 4)" ">=" 0.9
            ratio_line "$engine $size: Validate-hit p99 / Health p99" "$(value "$engine" "$size" validate-hit 6)" "$(value "$engine" "$size" health 6)" "<=" 1.5
            ratio_line "$engine $size: List deep p50 / first p50" "$(value "$engine" "$size" list-deep 5)" "$(value "$engine" "$size" list-first 5)" "<=" 1.2
            ratio_line "$engine $size: List first rps / deep rps" "$(value "$engine" "$size" list-first 4)" "$(value "$engine" "$size" list-deep 4)" "<=" 1.2
            if [[ "$engine" == postgres ]]; then
                ratio_line "$engine $size: Validate-miss rps / pgbench tps" "$(value "$engine" "$size" validate-miss 4)" "$(value "$engine" "$size" pgbench 4)" ">=" 0.6
                ratio_line "$engine $size: Validate-miss-tiny rps / pgbench tps" "$(value "$engine" "$size" validate-miss-tiny 4)" "$(value "$engine" "$size" pgbench 4)" ">=" 0.6
            fi
        done
        if [[ "$largest" != "$smallest" ]]; then
            ratio_line "$engine: Validate-miss p50 at $largest / at $smallest" "$(value "$engine" "$largest" validate-miss 5)" "$(value "$engine" "$smallest" validate-miss 5)" "<=" 1.2
            ratio_line "$engine: Validate-miss-tiny p50 at $largest / at $smallest" "$(value "$engine" "$largest" validate-miss-tiny 5)" "$(value "$engine" "$smallest" validate-miss-tiny 5)" "<=" 1.2
        fi
    done
}

# ---------------------------------------------------------------------------
# Main

log "ghz c=$CONCURRENCY connections=$CONNECTIONS duration=$DURATION warm-up=$WARMUP_REQUESTS calls; engines $ENGINES; sizes $SIZES"
for engine in "${ENGINE_LIST[@]}"; do
    if [[ "$engine" == postgres ]]; then
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$WORK_DIR/hashing.key"
        PG_ADMIN_URL="$(scripts/postgres.sh start)"
        POSTGRES_STARTED=true
    fi
    for size in "${SIZE_LIST[@]}"; do
        bench_one "$engine" "$size"
    done
done

print_report | tee "$OUTPUT_DIR/results.md"
log "finished in $((SECONDS - RUN_START)) s with $FAILURES failed checks"
[[ "$FAILURES" -eq 0 ]] || exit 1
