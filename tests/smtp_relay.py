#!/usr/bin/python3
"""smtp_relay.py - a scriptable SMTP relay for outbox's tests, on aiosmtpd.

It listens on 127.0.0.1 (a free port unless --port), prints "READY <port>"
on stdout once it accepts connections, and answers by the recipient's local
part, so one test can ask for several faults at once:

    anything else      250 at RCPT
    rcpt451-...        451 4.3.0 at RCPT            (deferred)
    rcpt550-...        550 5.1.1 at RCPT            (bounced)
    flakyN-...         451 at RCPT the first N times this address is seen,
                       then 250
    slowN-...          "421 4.7.0 slow down" at RCPT the first N times, then
                       250 (a relay asking its senders to slow down)
    data451-...        451 4.3.0 after DATA         (every recipient of the
    data554-...        554 5.6.0 after DATA          transaction gets it)
    drop-...           the connection is closed after DATA, before the reply
    dropmid-...        the connection is closed in the middle of the message
    stall-...          the reply to DATA comes --stall seconds late
    stallonce-...      the same, only the first time this address is sent

Options: --tls CERT KEY (offer STARTTLS; --require-tls: refuse without it),
--auth USER:PASS (AUTH PLAIN and LOGIN required), --dir DIR: every accepted
message is written to DIR/N.eml with DIR/N.json ({"from", "to"}), and every
RCPT is appended to DIR/rcpt.log ("ADDRESS CODE" lines).

Run it with Debian's /usr/bin/python3 (python3-aiosmtpd).
"""
import argparse
import asyncio
import json
import os
import re
import ssl
import sys

from asyncio import sslproto

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Smtp(SMTP):
    """aiosmtpd 1.4's STARTTLS loses the client's first TLS bytes on
    Python 3.11 when they arrive before the switch (its plain reader takes
    them, then discards them), and the handshake hangs. Here reading stops
    before "220" goes out and resumes once the TLS layer is in place."""

    def connection_made(self, transport):
        if self._original_transport is None and self.event_handler.dir:  # not the TLS restart
            with open(os.path.join(self.event_handler.dir, "sessions.log"), "a") as f:
                f.write("session\n")
        super().connection_made(transport)

    async def smtp_DATA(self, arg):
        if not any(a.lower().startswith("dropmid-") for a in self.envelope.rcpt_tos):
            return await super().smtp_DATA(arg)
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readline()  # the first line of the message, then hang up
        self.transport.close()

    async def smtp_STARTTLS(self, arg):
        if arg or not self.tls_context:
            return await super().smtp_STARTTLS(arg)
        self.transport.pause_reading()
        await self.push("220 Ready to start TLS")
        done = self.loop.create_future()
        tls = sslproto.SSLProtocol(self.loop, self, self.tls_context, done, server_side=True)
        self._tls_protocol = tls
        self._original_transport = self.transport
        self._original_transport.set_protocol(tls)
        self.transport = tls._app_transport
        tls.connection_made(self._original_transport)
        self._original_transport.resume_reading()
        await done


class Relay:
    def __init__(self, args):
        self.dir = args.dir
        self.stall = args.stall
        self.seen = {}
        self.stalled = set()
        self.count = 0

    def log_rcpt(self, address, code):
        if self.dir:
            with open(os.path.join(self.dir, "rcpt.log"), "a") as f:
                f.write(f"{address} {code}\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        n = self.seen.get(address, 0) + 1
        self.seen[address] = n
        reply = "250 2.1.5 OK"
        m = re.match(r"flaky(\d+)-", local)
        s = re.match(r"slow(\d+)-", local)
        if local.startswith("rcpt451-") or (m and n <= int(m.group(1))):
            reply = "451 4.3.0 try again later"
        elif s and n <= int(s.group(1)):
            reply = "421 4.7.0 too many messages, slow down"
        elif local.startswith("rcpt550-"):
            reply = "550 5.1.1 no such user here"
        self.log_rcpt(address, reply[:3])
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        locals_ = [a.split("@")[0].lower() for a in envelope.rcpt_tos]
        if any(l.startswith("drop-") for l in locals_):
            server.transport.close()
            return "421 4.4.2 closing"  # never reaches the client
        if any(l.startswith("stall-") for l in locals_):
            await asyncio.sleep(self.stall)
        once = [a for a in envelope.rcpt_tos if a.lower().startswith("stallonce-")]
        if once and not any(a in self.stalled for a in once):
            self.stalled.update(once)
            await asyncio.sleep(self.stall)
        if any(l.startswith("data451-") for l in locals_):
            return "451 4.3.0 queue trouble, try later"
        if any(l.startswith("data554-") for l in locals_):
            return "554 5.6.0 message refused"
        self.count += 1
        if self.dir:
            base = os.path.join(self.dir, str(self.count))
            with open(base + ".eml.tmp", "wb") as f:
                f.write(envelope.original_content)
            with open(base + ".json", "w") as f:
                json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, f)
            os.rename(base + ".eml.tmp", base + ".eml")
        return f"250 2.0.0 Ok: queued as M{self.count}"


def authenticator_for(userpass):
    user, _, password = userpass.partition(":")

    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535

    return check


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--require-tls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--dir")
    ap.add_argument("--stall", type=float, default=10.0)
    args = ap.parse_args()
    relay = Relay(args)
    kw = {"hostname": "relay.test", "enable_SMTPUTF8": False,
          "data_size_limit": 64 << 20}
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        kw.update(tls_context=ctx, require_starttls=args.require_tls)
    if args.auth:
        kw.update(authenticator=authenticator_for(args.auth), auth_required=True,
                  auth_require_tls=False)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Smtp(relay, loop=loop, **kw), "127.0.0.1",
                                      args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
