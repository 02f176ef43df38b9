#!/bin/sh
# tests/postfix_relay.sh - a private Postfix instance for tests and benches:
#
#   postfix_relay.sh start DIR SMTPD_PORT NEXTHOP_PORT
#   postfix_relay.sh stop DIR
#
# Postfix (as Debian installs it, unconfigured) listens on
# 127.0.0.1:SMTPD_PORT, accepts mail from 127.0.0.0/8 for any domain and
# relays all of it to [127.0.0.1]:NEXTHOP_PORT (e.g. Postfix's smtp-sink).
# Its configuration, queue and log live under DIR; nothing outside DIR is
# touched and nothing listens off loopback. Needs root (Postfix's master
# drops to the postfix user itself). The queue is fsynced as by default.
set -eu
PATH=$PATH:/usr/sbin:/sbin # postfix, postconf
cmd=$1 dir=$2
case $cmd in
start)
    smtpd_port=$3 nexthop_port=$4
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
    chown postfix "$dir/data"
    cat >"$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.outbox.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$nexthop_port
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtp_destination_concurrency_limit = 20
default_destination_concurrency_limit = 20
in_flow_delay = 0
smtpd_client_connection_rate_limit = 0
CF
    # Debian's master.cf with our smtpd port and no chroot (the chroot
    # would need copies of /etc files inside DIR).
    sed -e "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$smtpd_port inet n - n - - smtpd/" \
        -e 's/^\([a-z]*[ \t]*unix[ \t]*[-ny][ \t]*[-ny][ \t]*\)y/\1n/' \
        /usr/share/postfix/master.cf.dist >"$dir/etc/master.cf"
    grep -q "^127.0.0.1:$smtpd_port" "$dir/etc/master.cf" || {
        echo "postfix_relay.sh: could not set the smtpd port in master.cf" >&2
        exit 1
    }
    postfix -c "$dir/etc" check
    postfix -c "$dir/etc" start
    ;;
stop)
    postfix -c "$dir/etc" stop 2>/dev/null || true
    ;;
*)
    echo "usage: $0 start DIR SMTPD_PORT NEXTHOP_PORT | stop DIR" >&2
    exit 2
    ;;
esac
