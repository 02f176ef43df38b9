#!/usr/bin/env bash
# tests/completion.sh BIN_DIR - the bash completions (completions/) against
# the built outbox and outboxd: verbs, sub-verbs, options (read from each
# command's --help) and option values.
set -euo pipefail
PATH=$1:$PATH
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/completions/outbox.bash"
source "$root/completions/outboxd.bash"
fails=0
t() { # t FUNCTION WANT WORDS...: completing the last word gives WANT
    local fn=$1 want=$2
    shift 2
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    "$fn"
    if [ "${COMPREPLY[*]}" = "$want" ]; then
        echo "ok   $* -> $want"
    else
        echo "FAIL $* -> '${COMPREPLY[*]}', not '$want'"
        fails=$((fails + 1))
    fi
}
t _outbox job outbox jo
t _outbox "add cancel get list retry wait" outbox job ""
t _outbox "pause" outbox queue p
t _outbox "add" outbox suppression a
t _outbox "--search" outbox job list --se
t _outbox "--json" outbox --js
t _outbox "--timeout" outbox job wait --ti
t _outboxd "--store" outboxd --sto
t _outboxd "migrate" outboxd mi
t _outboxd "backup" outboxd ba
t _outboxd "check" outboxd ch
t _outboxd "warn" outboxd --log-level w
exit $((fails > 0))
