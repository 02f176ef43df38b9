#!/bin/sh
# cmake/layering.sh LAYERS - fail when a part of outbox calls a function of
# a part it may not use (the rule in docs/ARCHITECTURE.md).
#
# LAYERS has one line per part: "NAME|PARTS IT MAY CALL|OBJECT FILES". A
# symbol a part's objects leave undefined and another part defines is a
# call into that part; it must be one of the parts listed. Symbols no part
# defines (libc, SQLite, libmicrohttpd ...) are not this rule's business.
set -eu
layers=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while IFS='|' read -r name calls objects; do
    [ -n "$name" ] || continue
    # shellcheck disable=SC2086 # the object list is split on purpose
    nm -g --defined-only $objects | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/def.$name"
done <"$layers"
bad=0
while IFS='|' read -r name calls objects; do
    [ -n "$name" ] || continue
    for obj in $objects; do
        nm -u "$obj" | awk '{ print $NF }' | sort -u >"$tmp/undef"
        for def in "$tmp"/def.*; do
            owner=${def##*/def.}
            [ "$owner" = "$name" ] && continue
            case " $calls " in *" $owner "*) continue ;; esac
            for sym in $(comm -12 "$tmp/undef" "$def"); do
                echo "layering: src/$name ($(basename "$obj" .o)) calls $sym of src/$owner;" \
                     "$name may call only: ${calls:-nothing}" >&2
                bad=1
            done
        done
    done
done <"$layers"
exit $bad
