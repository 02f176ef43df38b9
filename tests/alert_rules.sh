#!/usr/bin/env bash
# tests/alert_rules.sh SRC OUTBOXD - the example Prometheus alert rules
# (docs/prometheus/): promtool finds them valid, their unit tests pass, and
# every metric they use is one a running outboxd exposes (a renamed metric
# would silence an alert without an error anywhere).
set -euo pipefail
src=$(cd "$1" && pwd) outboxd=$(realpath "$2")
rules=$src/docs/prometheus/outbox-alerts.yml
promtool check rules "$rules"
(cd "$src/docs/prometheus" && promtool test rules outbox-alerts.test.yml)

work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
"$outboxd" --listen 127.0.0.1:0 --workers 0 >od.log 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' od.log | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat od.log; exit 1; }
# a job that finishes (cancelled), so that every family has a series
id=$(curl -s -H 'Content-Type: application/json' \
     -d '{"kind":"http.request","queue":"q","delay":3600,"payload":{"url":"https://example.org/"}}' \
     "$url/v1/jobs" | grep -o '"id":"[^"]*"' | cut -d'"' -f4)
curl -s -X POST "$url/v1/jobs/$id/cancel" >/dev/null
metrics=$(curl -s "$url/metrics")
fail=0
for m in $(grep -oE '\b(outbox|process)_[a-z_]+' "$rules" | sort -u); do
    grep -qE "^$m(\{| )" <<<"$metrics" || { echo "FAIL the rules use $m, which outboxd does not expose"; fail=1; }
done
[ $fail = 0 ] && echo "ok   the alert rules are valid, their tests pass, and outboxd exposes every metric they use"
exit $fail
