#!/usr/bin/env bash
# Installs the load generator that bench/run.sh drives and checks for the
# other programs it needs. Prints one line per tool.
#
# ghz is built from source with `go install` into .tools/bin, where
# `. scripts/env.sh` puts it on PATH. Running the script again leaves a ghz
# at the pinned version alone. pgbench is not installed here: it ships in
# Debian's postgresql package (since PostgreSQL 15 the former
# postgresql-contrib package is part of it), which scripts/install-tools.sh
# installs.
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$TOKEND_ROOT"

# v0.120.0 builds with Go 1.26. `go version -m` must report this module
# version for an existing binary to count as pinned.
GHZ_PACKAGE=github.com/bojand/ghz/cmd/ghz
GHZ_MODULE=github.com/bojand/ghz
GHZ_VERSION=v0.120.0

say() {
    printf 'bench-install: %s\n' "$*"
}

fail() {
    printf 'bench-install: error: %s\n' "$*" >&2
    exit 1
}

# Prints module@version of the main module a Go binary was built from, or
# nothing when the file is missing or carries no build information.
go_binary_module() {
    [[ -x "$1" ]] || return 0
    go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $2 "@" $3; exit }'
}

install_ghz() {
    local bin=".tools/bin/ghz"
    command -v go >/dev/null 2>&1 || fail "go not found on PATH; install Go 1.26 or newer"
    if [[ "$(go_binary_module "$bin")" == "$GHZ_MODULE@$GHZ_VERSION" ]]; then
        say "ghz $GHZ_VERSION: found ($TOKEND_ROOT/$bin)"
        return 0
    fi
    mkdir -p .tools/bin
    # GOTOOLCHAIN=local makes a pin that needs a newer Go fail here with a
    # clear message, instead of fetching another Go toolchain.
    GOBIN="$TOKEND_ROOT/.tools/bin" GOTOOLCHAIN=local go install "$GHZ_PACKAGE@$GHZ_VERSION" ||
        fail "go install $GHZ_PACKAGE@$GHZ_VERSION failed; see the go output above"
    say "ghz $GHZ_VERSION: installed ($TOKEND_ROOT/$bin)"
}

check_pgbench() {
    local bindir
    if ! bindir="$(tokend_pg_bindir)"; then
        fail "PostgreSQL not found on PATH or under /usr/lib/postgresql/*/bin; run scripts/install-tools.sh"
    fi
    [[ -x "$bindir/pgbench" ]] ||
        fail "pgbench missing from $bindir; install the package that provides it (Debian: postgresql, or postgresql-contrib before PostgreSQL 15)"
    say "pgbench $("$bindir/pgbench" --version | awk '{ print $3 }'): found ($bindir/pgbench)"
}

check_jq() {
    command -v jq >/dev/null 2>&1 ||
        fail "jq not found on PATH; install it (Debian: apt-get install jq), because bench/run.sh reads ghz's JSON reports with it"
    say "$(jq --version): found ($(command -v jq))"
}

install_ghz
check_pgbench
check_jq
