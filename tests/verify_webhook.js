// verify_webhook.js SECRET HEADERS.json BODY [CLOCK_OFFSET_S]
//
// Verifies one webhook delivery with the `standardwebhooks` npm package, a
// verifier no one here wrote (tests/npm/package.json pins it). HEADERS.json
// is {"webhook-id", "webhook-timestamp", "webhook-signature"}; BODY the raw
// body. CLOCK_OFFSET_S moves the verifier's clock (a stale delivery is
// refused). Prints "verified TYPE" and exits 0, or "refused: WHY", exit 1.
const { Webhook } = require("standardwebhooks");
const fs = require("fs");

const [secret, headersFile, bodyFile, offset] = process.argv.slice(2);
const headers = JSON.parse(fs.readFileSync(headersFile, "utf8"));
const body = fs.readFileSync(bodyFile, "utf8");
if (offset) {
    const now = Date.now;
    Date.now = () => now() + Number(offset) * 1000;
}
try {
    const msg = new Webhook(secret).verify(body, headers);
    console.log(`verified ${msg.type || "(no type)"}`);
} catch (e) {
    console.log(`refused: ${e.message}`);
    process.exit(1);
}
