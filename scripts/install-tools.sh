#!/usr/bin/env bash
# Installs the tools that scripts/test.sh needs and prints one line per tool.
#
# Safe to run again: a tool that is present at its pinned version is left
# alone. Go tools go to .tools/bin, buf and protoc-gen-es to
# tools/node_modules/.bin, and `. scripts/env.sh` puts both on PATH. PostgreSQL
# comes from Debian's `postgresql` package, which needs root to install.
#
# Toolchains (Go, Node.js with npm, Rust with rustfmt and clippy) are not
# installed here: the script checks for them and stops if one is missing.
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$TOKEND_ROOT"

# Go tools: binary name, package@version, and the module@version that
# `go version -m` must report for an existing binary to count as pinned.
GO_TOOLS=(
    "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3 github.com/fullstorydev/grpcurl@v1.9.3"
    "protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 google.golang.org/protobuf@v1.36.12"
    "protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1 google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1"
)

say() {
    printf 'install-tools: %s\n' "$*"
}

fail() {
    printf 'install-tools: error: %s\n' "$*" >&2
    exit 1
}

require_toolchain() {
    local name="$1" hint="$2"
    command -v "$name" >/dev/null 2>&1 || fail "$name not found on PATH; $hint"
}

apt_updated=false

apt_install() {
    if [[ "$(id -u)" -ne 0 ]]; then
        fail "Debian packages missing: $*; install them as root (sudo apt-get install $*) and run this script again"
    fi
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install these packages with the system's package manager: $*"
    if [[ "$apt_updated" == false ]]; then
        # A fresh Debian image has no package lists, so install would find nothing.
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

check_toolchains() {
    require_toolchain go "install Go"
    require_toolchain node "install Node.js"
    require_toolchain npm "install npm (it ships with Node.js)"
    require_toolchain cargo "install Rust with rustup"
    cargo fmt --version >/dev/null 2>&1 || fail "rustfmt missing; run: rustup component add rustfmt"
    cargo clippy --version >/dev/null 2>&1 || fail "clippy missing; run: rustup component add clippy"
    say "go $(go env GOVERSION): found"
    say "node $(node --version), npm $(npm --version): found"
    say "$(cargo --version | cut -d' ' -f1-2), $(cargo fmt --version | cut -d' ' -f1-2), $(cargo clippy --version | cut -d' ' -f1-2): found"
}

install_postgres() {
    local bindir action=found
    if ! bindir="$(tokend_pg_bindir)"; then
        apt_install postgresql
        action=installed
        bindir="$(tokend_pg_bindir)" || fail "the postgresql package installed no initdb under /usr/lib/postgresql/*/bin"
    fi
    say "postgresql $("$bindir/initdb" --version | awk '{ print $3 }'): $action ($bindir)"
}

# Commands and the Debian packages that provide them. The Node client's TLS
# test makes its certificates with the openssl command, because Node cannot
# create X.509 certificates itself. The benchmark script reads ghz reports
# with jq and metrics with curl. The Rust test of an unwritable SQLite file
# makes the file immutable with chattr.
COMMANDS=(
    "openssl openssl"
    "jq jq"
    "curl curl"
    "chattr e2fsprogs"
)

install_commands() {
    local entry command package names="" missing=()
    for entry in "${COMMANDS[@]}"; do
        read -r command package <<<"$entry"
        names+="${names:+, }$command"
        command -v "$command" >/dev/null 2>&1 || missing+=("$package")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
    fi
    say "$names: found"
}

# Prints module@version of the main module a Go binary was built from, or
# nothing when the file is missing or carries no build information.
go_binary_module() {
    [[ -x "$1" ]] || return 0
    go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $2 "@" $3; exit }'
}

install_go_tools() {
    local entry name package module bin
    mkdir -p .tools/bin
    for entry in "${GO_TOOLS[@]}"; do
        read -r name package module <<<"$entry"
        bin=".tools/bin/$name"
        if [[ "$(go_binary_module "$bin")" == "$module" ]]; then
            say "$name ${module##*@}: found ($TOKEND_ROOT/$bin)"
            continue
        fi
        # GOTOOLCHAIN=local makes a pin that needs a newer Go fail here with
        # a clear message, instead of fetching another Go toolchain.
        GOBIN="$TOKEND_ROOT/.tools/bin" GOTOOLCHAIN=local go install "$package" ||
            fail "go install $package failed"
        say "$name ${module##*@}: installed ($TOKEND_ROOT/$bin)"
    done
}

install_node_tools() {
    local action=found
    # npm ci deletes and rebuilds node_modules, so run it only when the lock
    # file changed since the last install (npm writes the hidden lock file
    # node_modules/.package-lock.json on every install).
    if [[ ! -x tools/node_modules/.bin/buf ||
        ! -x tools/node_modules/.bin/protoc-gen-es ||
        ! tools/node_modules/.package-lock.json -nt tools/package-lock.json ]]; then
        (cd tools && npm ci --no-audit --no-fund) || fail "npm ci in tools/ failed"
        action=installed
    fi
    say "buf $(buf --version): $action ($TOKEND_ROOT/tools/node_modules/.bin/buf)"
    say "protoc-gen-es $(protoc-gen-es --version | awk '{ print $NF }'): $action ($TOKEND_ROOT/tools/node_modules/.bin/protoc-gen-es)"
}

check_toolchains
install_postgres
install_commands
install_go_tools
install_node_tools
