#!/usr/bin/env bash
# tests/readme.sh - the README's shell blocks, run as a new user runs them,
# so that the README cannot rot: in a copy of the checkout (the files git
# tracks), where scripts/run builds and starts outboxd as written:
#
#   Two commands           scripts/run (in the background), and its --help
#                          and --listen banner
#   Your first job         the curl, then every client command (the id put
#                          in for "01a211c4-…"; `events` stopped after 2 s;
#                          without a network example.com never answers, so
#                          `job wait` may end by timeout: 124 is allowed)
#   Your first mail        outbox send … --wait: delivered to ./mail
#   Send mail from your C  the C block, put in a main(), compiles against
#   web service            include/ with -Wall -Wextra -Werror
#   Several outboxd …      the block for one machine: a private PostgreSQL
#                          and three nodes, a job posted on one and read on
#                          another ("<id>" put in)
#
# and what scripts/run leaves in a checkout is ignored by git. Needs the
# packages scripts/test installs. Run by scripts/test; alone:
# tests/readme.sh [CHECKOUT].
set -euo pipefail
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work=$(mktemp -d /tmp/outbox-readme-XXXXXX)
chmod 755 "$work"
say() { printf '\033[1mreadme: %s\033[0m\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
cleanup() { # every process a block started is a job of this shell
    kill $(jobs -p) 2>/dev/null || true
    [ -d "$work/pg" ] && "$work/tests/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
    sleep 1
    kill -9 $(jobs -p) 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# block HEADING N: the Nth ```sh block of the section "## HEADING"
block() {
    awk -v h="## $1" -v n="$2" '
        /^## / { in_s = ($0 == h); k = 0; next }
        in_s && /^```sh/ { k++; if (k == n) { on = 1; next } }
        on && /^```/ { exit }
        on { print }' "$work/README.md"
}
# up URL: wait (20 s) until outboxd answers there
up() { for _ in $(seq 200); do curl -sf "$1/healthz" >/dev/null && return 0; sleep 0.1; done; return 1; }

say "a copy of $root in $work"
(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$work")
cd "$work"

say "Two commands: scripts/run --help, then scripts/run"
# (whole, then its first line: with pipefail, `| head -1` would fail a help
# longer than a pipe's buffer, outboxd writing on after head has gone)
help=$(scripts/run --help 2>/dev/null) || fail "scripts/run --help: exit $?"
head -1 <<<"$help" | grep -q '^usage: outboxd' || fail "scripts/run --help: no usage line"
cmd=$(block "Two commands" 1 | grep '^scripts/run')
[ "$cmd" ] || fail "no scripts/run in the Two commands block"
eval "exec ${cmd%%#*}" >run.log 2>&1 & # exec: $! is outboxd itself
run=$!
up http://127.0.0.1:8025 || { cat run.log; fail "scripts/run did not start outboxd"; }
grep -q 'outboxd is starting on http://127.0.0.1:8025' run.log || fail "the banner"
# another address: the banner and the commands it suggests follow it
banner=$(timeout 5 scripts/run --listen 127.0.0.1:18925 --store sqlite:./other.db 2>/dev/null || true)
printf '%s\n' "$banner" | grep -q 'starting on http://127.0.0.1:18925' || fail "--listen banner"
printf '%s\n' "$banner" | grep -q 'outbox --url http://127.0.0.1:18925 send' || fail "--listen commands"
for f in mail/x.eml outbox.secret outbox.db outbox.db-wal outbox.db.lock outboxd.log; do
    git -C "$root" check-ignore -q "$f" || fail ".gitignore does not cover $f (scripts/run leaves it)"
done

say "Your first job"
out=$(eval "$(block "Your first job" 2)")
id=$(printf '%s' "$out" | grep -o '"id":"[^"]*"' | cut -d'"' -f4)
[ "$id" ] || fail "the first job's curl: $out"
while IFS= read -r line; do
    line=${line%%#*}
    [ -n "${line// /}" ] || continue
    line=${line//01a211c4-…/$id}
    say "  $line"
    rc=0
    case $line in
    *" events"*) timeout 2 bash -c "$line" >/dev/null || rc=$? ;;
    *"job wait"*) timeout 10 bash -c "$line" >/dev/null || rc=$? ;;
    *) bash -c "$line" >/dev/null || rc=$? ;;
    esac
    case $rc in 0 | 124) ;; *) fail "$line: exit $rc" ;; esac
done < <(block "Your first job" 3)

say "Your first mail"
out=$(eval "$(block "Your first mail" 1 | grep 'outbox send')")
printf '%s\n' "$out" | grep -Eq "delivered +a@example.com +to +250" || fail "outbox send: $out"
printf '%s\n' "$out" | grep -q "written to $work/mail/" || fail "the reply's path: $out"

# run_lines HEADING N: each command line of that block (continuations
# joined, comments skipped), failing on the first that fails; $out is the
# last one's output. A CHECK function, if set, sees each line and its output.
run_lines() {
    while IFS= read -r line; do
        case $line in "#"* | "") continue ;; esac
        say "  ${line%%#*}"
        out=$(eval "$line" 2>&1) || fail "$line: $out"
        [ -z "${CHECK:-}" ] || "$CHECK" "$line" "$out"
    done < <(block "$1" "$2" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
}

say "Many jobs at once"
run_lines "The command-line client" 1
printf '%s\n' "$out" | grep -q '"matched":' || fail "POST /v1/jobs/retry: $out"

say "Queues: pause, caps and rates"
run_lines "Queues: pause, caps and rates" 1
printf '%s\n' "$out" | grep -q '"concurrency":8,"rate":null' || fail "PATCH /v1/queues: $out"

say "Schedules"
next_runs() { # the schedule shown has its next runs
    case $1 in *"schedule get"*) printf '%s\n' "$2" | grep -q '^next runs' || fail "no next runs: $2" ;; esac
}
CHECK=next_runs run_lines "Schedules" 1
printf '%s\n' "$out" | grep -q 'schedule poll deleted' || fail "schedule delete: $out"

say "Send mail from your C web service: the C block compiles"
{
    awk '/^### Send mail from your C web service/ { s = 1 } s && /^```c/ { on = 1; next }
         on && /^```/ { exit } on && /^#include/ { print }' README.md
    echo 'int main(void) {'
    awk '/^### Send mail from your C web service/ { s = 1 } s && /^```c/ { on = 1; next }
         on && /^```/ { exit } on && !/^#include/ { print }' README.md
    echo 'json_decref(msg); ob_job_free(j); ob_mail_status_free(st); (void)mailer; (void)pool;'
    echo 'return rc; }'
} >mail_block.c
cc -std=c11 -Wall -Wextra -Werror -fsyntax-only -Iinclude $(pkg-config --cflags jansson) \
    mail_block.c || fail "the C block of \"Send mail from your C web service\""

kill "$run" && wait "$run" 2>/dev/null || true
say "Several outboxd on one PostgreSQL, on one machine"
src=$(block "Several outboxd on one PostgreSQL" 2)
post=$(printf '%s\n' "$src" | grep -n 'curl -s -X POST' | cut -d: -f1)
eval "$(printf '%s\n' "$src" | head -n $((post - 1)))"
for p in 8025 8026 8027; do up "http://127.0.0.1:$p" || fail "node $p"; done
out=$(eval "$(printf '%s\n' "$src" | sed -n "${post}p")")
id=$(printf '%s' "$out" | grep -o '"id":"[^"]*"' | cut -d'"' -f4)
[ "$id" ] || fail "the POST to a node: $out"
get=$(printf '%s\n' "$src" | grep 'localhost:8027' | sed "s/<id>/$id/")
eval "$get" | grep -q "\"id\":\"$id\"" || fail "another node reading the job"
say "every block ran as written"
