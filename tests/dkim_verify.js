// tests/dkim_verify.js MESSAGE DOMAIN:SELECTOR:KEYFILE ... - verify a
// message's DKIM signature with the npm package mailauth, an implementation
// no one here wrote (the second verifier beside dkimpy's
// tests/dkim_verify.py). The public keys are derived from the private key
// files with node's crypto and served by this script's own resolver (no
// DNS). Prints "pass DOMAIN ALGORITHM" and exits 0 when the signature
// verifies; prints "fail ..." and exits 1 otherwise.
const fs = require("fs");
const crypto = require("crypto");
const { dkimVerify } = require("mailauth/lib/dkim/verify");

function record(keyfile) {
    const pub = crypto.createPublicKey(crypto.createPrivateKey(fs.readFileSync(keyfile)));
    const der = pub.export({ type: "spki", format: "der" });
    if (pub.asymmetricKeyType === "ed25519")
        return `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString("base64")}`;
    return `v=DKIM1; k=rsa; p=${der.toString("base64")}`;
}

async function main() {
    const [file, ...specs] = process.argv.slice(2);
    const keys = {};
    for (const spec of specs) {
        const [domain, selector, ...rest] = spec.split(":");
        keys[`${selector}._domainkey.${domain}`.toLowerCase()] = record(rest.join(":"));
    }
    const resolver = async (name, type) => {
        const r = keys[name.toLowerCase().replace(/\.$/, "")];
        if (type !== "TXT" || !r) {
            const e = new Error(`no ${type} for ${name}`);
            e.code = "ENOTFOUND";
            throw e;
        }
        return [[r]];
    };
    const res = await dkimVerify(fs.readFileSync(file), { resolver });
    const r = res.results[0];
    if (!r || r.status.result !== "pass") {
        console.log("fail", r ? `${r.status.result} ${r.status.comment || ""}` : "no signature");
        process.exit(1);
    }
    console.log("pass", r.signingDomain, r.algo);
}

main().catch((e) => { console.log("fail", e.message); process.exit(1); });
