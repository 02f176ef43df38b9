#!/usr/bin/env bash
# tests/manpages.sh SRC BUILD - the man pages (man/*.scd, made by scdoc at
# build time) against the programs they describe:
#   - mandoc finds no error in any page;
#   - outboxd(8) documents every option of `outboxd --help` and every command
#     of its usage, and no option --help lacks;
#   - outboxd.conf(5) names every option (the file takes them all);
#   - outbox(1) documents every verb and global option of `outbox --help`;
#   - liboutbox(3) names every public header.
set -u
src=$1 build=$2
fail=0
no() { echo "FAIL $*"; fail=1; }

for page in "$build"/man/*.[0-9]; do
    out=$(mandoc -T lint -W error "$page" 2>&1) || no "mandoc: $out"
    [ -s "$page" ] || no "$page is empty"
done

help=$("$build/outboxd" --help)
flags=$(grep -oE '^  --[a-z-]+' <<<"$help" | sed 's/^  --//' | sort -u)
page=$src/man/outboxd.8.scd
for f in $flags; do
    grep -qF -- "*--$f*" "$page" || no "outboxd(8) lacks --$f"
done
documented=$(sed -n '/^# OPTIONS/,/^# ENVIRONMENT/p' "$page" | grep -oE '^\*--[a-z-]+\*' | tr -d '*' | sed 's/^--//' | sort -u)
for f in $documented; do
    grep -qx -- "$f" <<<"$flags" || no "outboxd(8) documents --$f, which outboxd --help does not know"
done
for c in $(grep -oE '^ +outboxd [a-z]+' <<<"$help" | awk '{print $2}' | sort -u); do
    grep -qE "^\*$c( |\*)" "$page" || no "outboxd(8) lacks the command $c"
done
for f in $flags; do
    case $f in config|help|version) continue ;; esac
    grep -qE "(^|[ ,])$f([,.]|$)" "$src/man/outboxd.conf.5.scd" || no "outboxd.conf(5) lacks $f"
done

help=$("$build/outbox" --help)
page=$src/man/outbox.1.scd
while read -r line; do
    syntax=${line%%  *} # the description follows two spaces
    read -r verb first _ <<<"$syntax"
    [ -n "$verb" ] || continue
    first=${first:-}
    case $first in
    *'|'*) for sub in ${first//|/ }; do
               grep -qF "*$verb $sub*" "$page" || no "outbox(1) lacks $verb $sub"
           done ;;
    [a-z]*) grep -qF "*$verb $first*" "$page" || no "outbox(1) lacks $verb $first" ;;
    *) grep -qF "*$verb*" "$page" || no "outbox(1) lacks $verb" ;;
    esac
done < <(sed -n '/^  [a-z]/p' <<<"$help" | sed 's/^  //')

for f in $(grep -oE '^  --[a-z-]+' <<<"$help" | sed 's/^  //'); do
    grep -qF -- "*$f*" "$page" || no "outbox(1) lacks $f"
done

for h in "$src"/include/outbox/*.h; do
    grep -qF "outbox/$(basename "$h")" "$src/man/liboutbox.3.scd" || no "liboutbox(3) lacks <outbox/$(basename "$h")>"
done

[ $fail = 0 ] && echo "ok   the man pages agree with --help and the headers; mandoc finds no error"
exit $fail
