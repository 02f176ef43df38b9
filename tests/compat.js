// tests/compat.js URL TOKEN - the compatible mail APIs through their
// official npm SDKs, which no one here wrote (run by tests/test_compat.c
// against a real outboxd whose mail goes to aiosmtpd):
//   postmark: sendEmail; sendEmailBatch (one message refused, the others
//   stored); an invalid message surfacing as the SDK's own ApiInputError
//   (ErrorCode 300); a bad token as its InvalidAPIKeyError; tracking
//   refused by name.
// Prints one "ok"/"FAIL" line per check, then "ids: ..." with every
// accepted message's id for the C side to follow to delivery; exits 1 on
// a failure.
const postmark = require("postmark");

const [url, token] = process.argv.slice(2);
const host = url.replace(/^http:\/\//, "");
let failures = 0;
const ids = [];
const check = (cond, what, why) => {
    console.log(cond ? `ok   ${what}` : `FAIL ${what}: ${why}`);
    if (!cond) failures++;
};
const failsWith = async (fn) => {
    try {
        await fn();
        return null;
    } catch (e) {
        return e;
    }
};

async function main() {
    const client = new postmark.ServerClient(token, { useHttps: false, requestHost: host, timeout: 30 });
    const one = await client.sendEmail({
        From: "\"Doe, Ann\" <ann@example.com>", To: "ok-pm1@example.net, \"Bo, B\" <ok-pm2@example.net>",
        Cc: "ok-pm3@example.net", Subject: "Postmark single", TextBody: "hello from postmark",
        HtmlBody: "<p>hello</p>", ReplyTo: "reply@example.com", Tag: "welcome",
        Headers: [{ Name: "X-Campaign", Value: "c1" }], Metadata: { order: "42" },
        Attachments: [{ Name: "a.txt", Content: Buffer.from("attached").toString("base64"),
            ContentType: "text/plain" }],
        MessageStream: "outbound",
    });
    check(one.ErrorCode === 0 && one.Message === "OK" && /^[0-9a-f-]{36}$/.test(one.MessageID)
        && one.To.includes("ok-pm1@example.net") && !Number.isNaN(Date.parse(one.SubmittedAt)),
        "postmark sendEmail: ErrorCode 0, a MessageID, To, SubmittedAt", JSON.stringify(one));
    ids.push(one.MessageID);

    const batch = await client.sendEmailBatch([
        { From: "ann@example.com", To: "ok-pm4@example.net", Subject: "batch 1", TextBody: "one" },
        { From: "ann@example.com", To: "not-an-address", Subject: "batch 2", TextBody: "two" },
        { From: "ann@example.com", To: "ok-pm5@example.net", Subject: "batch 3", HtmlBody: "<b>3</b>" },
    ]);
    check(Array.isArray(batch) && batch.length === 3 && batch[0].ErrorCode === 0 &&
        batch[1].ErrorCode === 300 && /To/.test(batch[1].Message) && batch[2].ErrorCode === 0,
    "postmark sendEmailBatch: one result a message, the bad one ErrorCode 300 naming To",
    JSON.stringify(batch));
    for (const r of batch) if (r.ErrorCode === 0) ids.push(r.MessageID);

    let e = await failsWith(() => client.sendEmail({ From: "ann@example.com", To: "nobody", TextBody: "x" }));
    check(e instanceof postmark.Errors.ApiInputError && e.code === 300 && e.statusCode === 422,
        "postmark: an invalid message is the SDK's ApiInputError, code 300", e && `${e.name} ${e.code} ${e.message}`);
    e = await failsWith(() => client.sendEmail({ From: "ann@example.com", To: "ok@example.net",
        TextBody: "x", TrackOpens: true }));
    check(e instanceof postmark.Errors.ApiInputError && /TrackOpens/.test(e.message),
        "postmark: TrackOpens refused by name, not dropped", e && e.message);
    const bad = new postmark.ServerClient("not-a-token-of-this-server", { useHttps: false, requestHost: host });
    e = await failsWith(() => bad.sendEmail({ From: "ann@example.com", To: "ok@example.net", TextBody: "x" }));
    check(e instanceof postmark.Errors.InvalidAPIKeyError && e.code === 10,
        "postmark: a bad token is the SDK's InvalidAPIKeyError, code 10", e && `${e.name} ${e.code}`);

    console.log(`ids: ${ids.join(" ")}`);
    if (failures) process.exit(1);
}

main().catch((err) => { console.log(`FAIL ${err.stack || err}`); process.exit(1); });
