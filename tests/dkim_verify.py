#!/usr/bin/python3
"""tests/dkim_verify.py MESSAGE DOMAIN:SELECTOR:KEYFILE ... - verify a
message's DKIM signature with dkimpy (Debian's python3-dkim), an
implementation no one here wrote. The public keys are derived from the
private key files given and served by a resolver of this script's own
(no DNS): SELECTOR._domainkey.DOMAIN -> "v=DKIM1; k=rsa|ed25519; p=...".
Prints the signing domain and algorithm and exits 0 when the signature
verifies, 1 when it does not, 2 on a usage error.
"""
import base64
import subprocess
import sys

import dkim


def record(keyfile):
    der = subprocess.run(["openssl", "pkey", "-in", keyfile, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    text = subprocess.run(["openssl", "pkey", "-in", keyfile, "-noout", "-text"],
                          check=True, capture_output=True, text=True).stdout
    if text.startswith("ED25519"):
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:])
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    keys = {}
    for spec in sys.argv[2:]:
        domain, selector, keyfile = spec.split(":", 2)
        keys[f"{selector}._domainkey.{domain}.".lower()] = record(keyfile)
    msg = open(sys.argv[1], "rb").read()

    def dns(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return keys.get(name.lower().rstrip(".") + ".")

    d = dkim.DKIM(msg)
    try:
        ok = d.verify(dnsfunc=dns)
    except dkim.DKIMException as e:
        print("fail", e)
        return 1
    sig = getattr(d, "signature_fields", None) or {}
    print("pass" if ok else "fail", (sig.get(b"d") or b"?").decode(), (sig.get(b"a") or b"?").decode())
    return 0 if ok else 1


sys.exit(main())
