#!/usr/bin/env bash
# tests/install.sh BUILD_DIR - `cmake --install` into a scratch prefix, then
# build programs against the installed tree alone and run them:
#
#   1. everything install.cmake lists is there (binaries, liboutbox.so with
#      its SONAME and only ob_ symbols exported, liboutbox.a, the headers,
#      outbox.pc, the CMake package, the unit naming the installed outboxd,
#      the example config, the bash completions), and the installed outboxd
#      and outbox answer --version
#   2. tests/consumer/Makefile: examples/quickstart.c with pkg-config,
#      shared and static
#   3. tests/consumer/CMakeLists.txt: the same with find_package(outbox)
#
# Each program is a copy of examples/quickstart.c in a directory of its own,
# so nothing of the source tree is on its include path. Run by
# scripts/test (on the Release build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: tests/install.sh BUILD_DIR}" && pwd)
work=$(mktemp -d /tmp/outbox-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
say() { printf '\033[1minstall: %s\033[0m\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
lib=$prefix/lib
for f in sbin/outboxd bin/outbox lib/liboutbox.a lib/liboutbox.so lib/pkgconfig/outbox.pc \
         lib/cmake/outbox/outboxConfig.cmake lib/cmake/outbox/outboxConfigVersion.cmake \
         lib/cmake/outbox/outboxTargets.cmake include/outbox/jobs.h include/outbox/mail.h \
         lib/systemd/system/outboxd.service etc/outbox/outboxd.conf \
         share/bash-completion/completions/outbox share/bash-completion/completions/outboxd \
         include/outbox/store.h share/man/man8/outboxd.8 share/man/man1/outbox.1 \
         share/man/man5/outboxd.conf.5 share/man/man3/liboutbox.3; do
    [ -e "$prefix/$f" ] || fail "$f was not installed"
done
soname=$(objdump -p "$lib/liboutbox.so" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = liboutbox.so.0 ] || fail "SONAME is '$soname', not liboutbox.so.0"
[ -L "$lib/liboutbox.so.0" ] && [ -f "$(readlink -f "$lib/liboutbox.so")" ] || fail "the .so links"
# the shared library exports the public API and nothing else
bad=$(nm -D --defined-only "$lib/liboutbox.so" | awk '$2 ~ /[TDB]/ && $3 !~ /^ob_/ { print $3 }')
[ -z "$bad" ] || fail "liboutbox.so exports non-ob_ symbols: $bad"
grep -q "^ExecStart=$prefix/sbin/outboxd " "$prefix/lib/systemd/system/outboxd.service" ||
    fail "the unit does not start the installed outboxd"
"$prefix/sbin/outboxd" --version | grep -q "^outboxd " || fail "installed outboxd --version"
"$prefix/bin/outbox" --version | grep -q "^outbox " || fail "installed outbox --version"
say "installed: $(cd "$prefix" && find . -type f -o -type l | wc -l) files, SONAME $soname"

run() { # run NAME PROGRAM: the quickstart against a store of its own
    (cd "$work" && LD_LIBRARY_PATH=$lib "$2" --store "sqlite:$work/$1.db" >"$work/$1.out" 2>&1) ||
        { cat "$work/$1.out" >&2; fail "$1 failed"; }
    say "$1: ran ($(tail -n 1 "$work/$1.out"))"
}

mkdir "$work/make" "$work/cmake"
for d in make cmake; do cp "$root/examples/quickstart.c" "$work/$d/"; done
cp "$root/tests/consumer/Makefile" "$work/make/"
cp "$root/tests/consumer/CMakeLists.txt" "$work/cmake/"
PKG_CONFIG_PATH=$lib/pkgconfig make -s -C "$work/make" >"$work/make.log" 2>&1 ||
    { cat "$work/make.log" >&2; fail "the pkg-config build"; }
LD_LIBRARY_PATH=$lib ldd "$work/make/quickstart" | grep -q "liboutbox.so.0 => $lib/" ||
    fail "the pkg-config build did not link liboutbox.so"
! ldd "$work/make/quickstart-static" | grep -q liboutbox || fail "the static build links liboutbox.so"
run make-shared "$work/make/quickstart"
run make-static "$work/make/quickstart-static"
(cmake -S "$work/cmake" -B "$work/cmake/build" -DCMAKE_PREFIX_PATH="$prefix" &&
    cmake --build "$work/cmake/build") >"$work/cmake.log" 2>&1 ||
    { cat "$work/cmake.log" >&2; fail "the find_package build"; }
run cmake-shared "$work/cmake/build/quickstart"
run cmake-static "$work/cmake/build/quickstart-static"
say "passed"
