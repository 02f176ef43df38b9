# scripts/lib.sh - shared by scripts/run, scripts/test and bench/*: install
# what is missing from Debian's packages, and build. Sourced, not run.
#
# Packages are checked one by one with dpkg-query and only the missing ones
# are installed, so a second run costs nothing and needs no network.

set -euo pipefail

OB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OB_JOBS=${OB_JOBS:-$(nproc)}

# The build and test tool chain and the libraries liboutbox links.
OB_PACKAGES_BUILD=(build-essential cmake pkg-config clang libclang-rt-14-dev
                   libsqlite3-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev
                   libssl-dev util-linux curl prometheus
                   libgmime-3.0-dev libesmtp-dev libidn2-dev libpq-dev libsystemd-dev systemd
                   scdoc)

# The real servers the tests start: Postfix (and its smtp-sink), aiosmtpd
# (a scriptable SMTP server, run with Debian's /usr/bin/python3) and
# PostgreSQL (private instances on free ports: tests/pg_server.sh).
OB_PACKAGES_TEST=(postfix python3-aiosmtpd python3-dkim openssl postgresql chromium mandoc
                  debhelper dpkg-dev lintian git)

ob_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ob_install PKG... : apt-get install the packages that are not installed.
ob_install() {
    local missing=()
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    ob_say "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix: install it, configure nothing, start nothing (tests run
    # their own instances on free ports).
    echo "postfix postfix/main_mailer_type select No configuration" |
        $sudo debconf-set-selections 2>/dev/null || true
    if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
        $sudo apt-get update -qq
        $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# ob_npm_tools: the npm packages the tests use (clients no one here wrote,
# pinned by tests/npm/package-lock.json) into build-tools/test-npm, with
# npm ci; again only when the lock file changed.
ob_npm_tools() {
    command -v node >/dev/null && command -v npm >/dev/null || ob_install nodejs npm
    local dir="$OB_ROOT/build-tools/test-npm"
    if ! cmp -s "$OB_ROOT/tests/npm/package-lock.json" "$dir/package-lock.json" ||
       [ ! -d "$dir/node_modules" ]; then
        ob_say "installing the tests' npm packages (tests/npm, npm ci)"
        rm -rf "$dir"
        mkdir -p "$dir"
        cp "$OB_ROOT/tests/npm/package.json" "$OB_ROOT/tests/npm/package-lock.json" "$dir/"
        (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
    fi
}

# ob_build DIR TYPE CC [cmake args...] : configure (once) and build.
ob_build() {
    local dir=$1 type=$2 cc=$3
    shift 3
    local log="$OB_ROOT/$dir.log"
    mkdir -p "$OB_ROOT/$dir"
    if ! { cmake -S "$OB_ROOT" -B "$OB_ROOT/$dir" -DCMAKE_BUILD_TYPE="$type" \
                 -DCMAKE_C_COMPILER="$cc" "$@" &&
           cmake --build "$OB_ROOT/$dir" -j "$OB_JOBS"; } >"$log" 2>&1; then
        cat "$log" >&2
        ob_say "build failed ($dir): see above"
        return 1
    fi
}
