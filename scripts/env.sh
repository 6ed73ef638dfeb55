# shellcheck shell=bash
# Puts the project's pinned tools first on PATH. Source it from bash:
#
#   . scripts/env.sh
#
# It sets TOKEND_ROOT to the repository root and prepends .tools/bin (Go tools
# from scripts/install-tools.sh) and tools/node_modules/.bin (buf and
# protoc-gen-es from tools/package-lock.json). Sourcing it twice adds nothing.

TOKEND_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TOKEND_ROOT

for tokend_tool_dir in "$TOKEND_ROOT/tools/node_modules/.bin" "$TOKEND_ROOT/.tools/bin"; do
    case ":$PATH:" in
        *":$tokend_tool_dir:"*) ;;
        *) PATH="$tokend_tool_dir:$PATH" ;;
    esac
done
unset tokend_tool_dir
export PATH

# Prints the directory with PostgreSQL's server programs (initdb, pg_ctl), or
# returns 1 when there is none. An initdb on PATH wins, so a developer can
# choose a version. Otherwise the newest Debian install under
# /usr/lib/postgresql/<version>/bin is used, because Debian keeps those
# programs off PATH.
tokend_pg_bindir() {
    local initdb dir
    if initdb="$(command -v initdb)"; then
        # Resolve symlinks such as /usr/local/bin/initdb so that pg_isready
        # is looked up beside the real initdb.
        dir="$(dirname "$(readlink -f "$initdb")")"
        if [[ -x "$dir/pg_ctl" ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
        printf '%s\n' "$dir"
        return 0
    fi
    return 1
}
