# bench/lib.sh - shell helpers the bench scripts share (sourced after
# scripts/lib.sh): free ports, waiting for a server, /metrics samples,
# medians and ratios.

free_port() { # a TCP port on 127.0.0.1 nobody listens on, below the ephemeral
    local p     # range (32768-60999), where a client's connection could take it
    while :; do
        p=$((20000 + RANDOM % 12000))
        (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

until_up() { # until_up URL: wait until it answers (10 s at most); else show outboxd's log
    for _ in $(seq 500); do curl -s -o /dev/null "$1" && return 0; sleep 0.02; done
    ob_say "nothing answers at $1"
    [ -f "${tmp:-/nonexistent}/outboxd.log" ] && tail -n 20 "$tmp/outboxd.log" >&2
    exit 1
}

metric() { # metric PORT NAME: the value of a sample in outboxd's /metrics (0 if absent)
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" 'index($0, n " ") == 1 { v = $2 } END { print v + 0 }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

now() { date +%s.%N; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
