#!/usr/bin/env bash
# tests/deb.sh SRC - the Debian packages, as an operator meets them:
#   1. dpkg-buildpackage -us -uc -b builds them from the tracked files of
#      SRC (a scratch copy: the build writes beside the source);
#   2. lintian finds no error (tags of any other level are listed);
#   3. dpkg -i installs them: the service user _outbox and /var/lib/outbox
#      (0700, its own) exist, the man pages and pkg-config answer;
#   4. the installed outboxd, started as _outbox without systemd (CI has no
#      init), takes a mail and writes it into its file transport;
#   5. dpkg --purge removes them, their state and their configuration.
# Needs root (it installs packages); leaves nothing installed, even when it
# fails.
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/ob-deb.XXXXXX)
pkgs=(outboxd outbox liboutbox0 liboutbox-dev)
od_pid=
cleanup() {
    [ -n "$od_pid" ] && kill "$od_pid" 2>/dev/null || true
    dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL $*" >&2; exit 1; }
ok() { echo "ok   $*"; }

for p in "${pkgs[@]}"; do
    ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        fail "$p is installed already: this test installs and purges it (dpkg --purge ${pkgs[*]})"
done

version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
tree=$work/outbox-$version
mkdir -p "$tree"
(cd "$src" && git ls-files -z | tar --null -cf - -T -) | tar -xf - -C "$tree"
(cd "$tree" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) ||
    { tail -30 "$work/build.log"; fail "dpkg-buildpackage"; }
debs=()
for p in "${pkgs[@]}"; do
    f=$(ls "$work/${p}_${version}_"*.deb)
    debs+=("$f")
    echo "     $(basename "$f"): $(dpkg-deb -c "$f" | awk '$1 !~ /^d/ {print $6}' | tr '\n' ' ')"
done
ok "dpkg-buildpackage -us -uc -b: ${pkgs[*]}"

tags=$(lintian --pedantic --display-info "$work"/*.changes 2>&1 | grep -v 'root privileges' || true)
grep -q '^E:' <<<"$tags" && { echo "$tags"; fail "lintian reports errors"; }
ok "lintian: no error; its other tags:"
sed 's/^/     /' <<<"${tags:-(none)}"

dpkg -i "${debs[@]}" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
id _outbox >/dev/null || fail "no _outbox user after install"
[ "$(stat -c '%U %a' /var/lib/outbox)" = "_outbox 700" ] || fail "/var/lib/outbox is $(stat -c '%U %a' /var/lib/outbox)"
[ -f /etc/outbox/outboxd.conf ] || fail "no /etc/outbox/outboxd.conf"
man -w outboxd >/dev/null && man -w outbox >/dev/null && man -w 5 outboxd.conf >/dev/null &&
    man -w 3 liboutbox >/dev/null || fail "a man page is not installed"
[ "$(pkg-config --modversion outbox)" = "$version" ] || fail "pkg-config outbox"
grep -q '^ExecStart=/usr/sbin/outboxd ' /lib/systemd/system/outboxd.service || fail "the unit's ExecStart"
/usr/sbin/outboxd check --config /etc/outbox/outboxd.conf >/dev/null || fail "outboxd check on the shipped config"
ok "dpkg -i: the user _outbox, /var/lib/outbox (0700), the config, the man pages, pkg-config"

cd /var/lib/outbox
setpriv --reuid=_outbox --regid=_outbox --clear-groups \
    /usr/sbin/outboxd --config /etc/outbox/outboxd.conf --listen 127.0.0.1:0 >"$work/od.log" 2>&1 &
od_pid=$!
url=
for _ in $(seq 100); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/od.log" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$work/od.log"; fail "the installed outboxd did not start"; }
[ "$(ps -o user= -p "$od_pid")" = _outbox ] || fail "outboxd does not run as _outbox"
out=$(outbox --url "$url" send --from app@example.org --to ann@example.org \
      --subject "from the package" --text hello --wait 30) || { echo "$out"; fail "outbox send"; }
eml=$(ls /var/lib/outbox/mail/*.eml)
grep -q "^Subject: from the package" "$eml" || fail "the mail file lacks the subject"
[ "$(stat -c %U "$eml")" = _outbox ] || fail "the mail file is not _outbox's"
kill -TERM "$od_pid"
wait "$od_pid" || fail "outboxd exited $? on SIGTERM"
od_pid=
cd /
ok "the installed outboxd, as _outbox without systemd: a mail into /var/lib/outbox/mail"

dpkg --purge "${pkgs[@]}" >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
for p in /usr/sbin/outboxd /usr/bin/outbox /etc/outbox /var/lib/outbox /lib/systemd/system/outboxd.service \
         /usr/include/outbox; do
    [ ! -e "$p" ] || fail "$p is left after purge"
done
for p in "${pkgs[@]}"; do
    ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed || fail "$p is still installed"
done
ok "dpkg --purge: the programs, /etc/outbox and /var/lib/outbox gone"
