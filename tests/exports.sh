#!/bin/sh
# tests/exports.sh SHARED STATIC - what an embedder links against holds only
# outbox's names:
#   liboutbox.so  has a SONAME (liboutbox.so.MAJOR) and exports exactly the
#                 public API: every dynamic symbol it defines starts with ob_
#                 and is declared in include/outbox/;
#   liboutbox.a   every global symbol it defines starts with ob (ob_ public,
#                 obi_ internal), so none can collide with the embedder's.
# Sanitizer builds add their own globals to instrumented objects
# (__odr_asan.NAME, __asan_*, __tsan_*): those are the compiler's, skipped.
set -eu
so=$1 a=$2 include=$(dirname "$0")/../include/outbox
fail() { echo "exports: $*" >&2; exit 1; }

soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
case $soname in liboutbox.so.[0-9]*) ;; *) fail "$so: SONAME is '$soname'" ;; esac

dyn=$(nm -D --defined-only "$so" | awk 'NF == 3 && $2 != "A" { print $3 }' | sed 's/@.*//' | sort -u)
[ "$(printf '%s\n' "$dyn" | grep -c '^ob_')" -gt 100 ] || fail "$so exports too little"
others=$(printf '%s\n' "$dyn" | grep -v '^ob_' || true)
[ -z "$others" ] || fail "$so exports names outside the API: $(echo $others)"
for sym in $dyn; do
    grep -qw "$sym" "$include"/*.h || fail "$so exports $sym, which no public header declares"
done

glob=$(nm -g --defined-only "$a" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u |
       grep -v '^__odr_asan\.\|^__asan_\|^__tsan_\|^__ubsan_' || true)
[ -n "$glob" ] || fail "$a defines nothing"
others=$(printf '%s\n' "$glob" | grep -v '^ob' || true)
[ -z "$others" ] || fail "$a defines names outside ob*: $(echo $others)"
echo "exports: $soname exports $(printf '%s\n' "$dyn" | wc -l) ob_ names;" \
     "liboutbox.a defines $(printf '%s\n' "$glob" | wc -l) globals, all ob*"
