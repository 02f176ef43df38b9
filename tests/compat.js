// tests/compat.js URL TOKEN - the compatible mail APIs through their
// official npm SDKs, which no one here wrote (run by tests/test_compat.c
// against a real outboxd whose mail goes to aiosmtpd):
//   postmark: sendEmail; sendEmailBatch (one message refused, the others
//   stored); an invalid message surfacing as the SDK's own ApiInputError
//   (ErrorCode 300); a bad token as its InvalidAPIKeyError; tracking
//   refused by name; a message to a suppressed address only as the SDK's
//   InactiveRecipientsError (406) with the address parsed out of Postmark's
//   wording, in a batch as ErrorCode 406, and taken when some recipient is
//   left.
//   resend (RESEND_BASE_URL): emails.send with an Idempotency-Key (a repeat
//   gives the same id, another body under the key 409); emails.get until
//   delivered; batch.send strict (one invalid message: the batch refused,
//   none stored) and permissive (the valid ones stored, the invalid one by
//   index); a batch's Idempotency-Key refused (not ignored); a bad key;
//   natural-language scheduled_at refused; a message to a suppressed
//   address taken, then emails.get says last_event "suppressed".
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

// Put an address on outboxd's suppression list (its own API).
async function suppress(address) {
    const r = await fetch(`${url}/v1/suppressions/${encodeURIComponent(address)}`, {
        method: "PUT", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ reason: "spam_complaint" }),
    });
    check(r.status === 201, `PUT /v1/suppressions/${address}: 201`, r.status);
}

async function postmarkInactive(client) {
    await suppress("gone-pm@example.net");
    let e = await failsWith(() => client.sendEmail({ From: "ann@example.com", To: "Gone <gone-pm@Example.NET>",
        Subject: "x", TextBody: "x" }));
    check(e instanceof postmark.Errors.InactiveRecipientsError && e.code === 406 && e.statusCode === 422 &&
        e.recipients.length === 1 && e.recipients[0] === "gone-pm@example.net",
    "postmark: every recipient suppressed is the SDK's InactiveRecipientsError (406), the address parsed",
    e && `${e.name} ${e.code} ${e.statusCode} ${JSON.stringify(e.recipients)} ${e.message}`);
    const batch = await client.sendEmailBatch([
        { From: "ann@example.com", To: "gone-pm@example.net", Subject: "b", TextBody: "b" },
        { From: "ann@example.com", To: "ok-pm7@example.net, gone-pm@example.net", Subject: "b", TextBody: "b" },
    ]);
    check(batch[0].ErrorCode === 406 && /Found inactive addresses: gone-pm@example.net\./.test(batch[0].Message) &&
        batch[1].ErrorCode === 0, "postmark sendEmailBatch: ErrorCode 406 for the suppressed one; "
        + "one with a recipient left is taken", JSON.stringify(batch));
}

async function main() {
    const client = new postmark.ServerClient(token, { useHttps: false, requestHost: host, timeout: 30 });
    await postmarkInactive(client);
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

    await resendChecks();
    console.log(`ids: ${ids.join(" ")}`);
    if (failures) process.exit(1);
}

async function resendChecks() {
    process.env.RESEND_BASE_URL = url; // read when the client is made
    const { Resend } = require("resend");
    const resend = new Resend(token);
    const email = {
        from: "Acme <ann@example.com>", to: ["ok-rs1@example.net"], cc: "ok-rs2@example.net",
        replyTo: ["reply@example.com"], subject: "Resend single", html: "<p>hi</p>", text: "hi",
        headers: { "X-Entity-Ref-ID": "r1" },
        attachments: [{ filename: "r.txt", content: Buffer.from("resend attachment") }],
        tags: [{ name: "category", value: "welcome" }],
    };
    const one = await resend.emails.send(email, { idempotencyKey: "welcome-ann-1" });
    check(one.error === null && /^[0-9a-f-]{36}$/.test(one.data.id), "resend emails.send: an id",
        JSON.stringify(one.error));
    const again = await resend.emails.send(email, { idempotencyKey: "welcome-ann-1" });
    check(again.error === null && again.data.id === one.data.id,
        "resend: the same Idempotency-Key and body give the same id", JSON.stringify(again));
    const other = await resend.emails.send({ ...email, subject: "another" }, { idempotencyKey: "welcome-ann-1" });
    check(other.error && other.error.statusCode === 409 && other.error.name === "invalid_idempotent_request",
        "resend: another body under the key is 409 invalid_idempotent_request", JSON.stringify(other));
    ids.push(one.data.id);
    let got;
    for (let i = 0; i < 100; i++) {
        got = await resend.emails.get(one.data.id);
        if (got.data && got.data.last_event === "delivered") break;
        await new Promise((r) => setTimeout(r, 100));
    }
    check(got.error === null && got.data.object === "email" && got.data.id === one.data.id &&
        got.data.to[0] === "ok-rs1@example.net" && got.data.from === "Acme <ann@example.com>" &&
        got.data.subject === "Resend single" && got.data.last_event === "delivered",
    "resend emails.get: the email, delivered", JSON.stringify(got));

    const strict = await resend.batch.send([
        { from: "ann@example.com", to: "ok-rs-strict1@example.net", subject: "s1", text: "1" },
        { from: "ann@example.com", to: "broken", subject: "s2", text: "2" },
    ]);
    check(strict.data === null && strict.error.statusCode === 422 && strict.error.name === "validation_error" &&
        /\[1\]/.test(strict.error.message), "resend batch.send strict: one invalid, the batch refused",
    JSON.stringify(strict));
    const loose = await resend.batch.send([
        { from: "ann@example.com", to: "ok-rs3@example.net", subject: "p1", text: "1" },
        { from: "ann@example.com", to: "broken", subject: "p2", text: "2" },
        { from: "ann@example.com", to: "ok-rs4@example.net", subject: "p3", text: "3" },
    ], { batchValidation: "permissive" });
    check(loose.error === null && loose.data.data.length === 2 && loose.data.errors.length === 1 &&
        loose.data.errors[0].index === 1, "resend batch.send permissive: two stored, one refused by index",
    JSON.stringify(loose));
    if (loose.data) for (const d of loose.data.data) ids.push(d.id);
    const keyed = await resend.batch.send([
        { from: "ann@example.com", to: "ok-rs-keyed@example.net", subject: "k", text: "k" },
    ], { idempotencyKey: "batch-1" });
    check(keyed.error && keyed.error.statusCode === 400 && /Idempotency-Key/.test(keyed.error.message),
        "resend batch.send with an Idempotency-Key: refused by name, not ignored", JSON.stringify(keyed));

    const bad = new Resend("not-a-key-of-this-server");
    const denied = await bad.emails.send({ from: "ann@example.com", to: "ok@example.net", subject: "x", text: "x" });
    check(denied.error && denied.error.statusCode === 403 && denied.error.name === "invalid_api_key",
        "resend: a bad key is 403 invalid_api_key", JSON.stringify(denied));
    const later = await resend.emails.send({ from: "ann@example.com", to: "ok@example.net", subject: "x",
        text: "x", scheduledAt: "in 1 min" });
    check(later.error && later.error.statusCode === 422 && /scheduled_at/.test(later.error.message),
        "resend: natural-language scheduled_at refused by name", JSON.stringify(later));

    await suppress("gone-rs@example.net");
    const gone = await resend.emails.send({ from: "ann@example.com", to: "gone-rs@example.net", subject: "g",
        text: "g" });
    check(gone.error === null, "resend: a message to a suppressed address is taken", JSON.stringify(gone));
    let seen;
    for (let i = 0; gone.data && i < 100; i++) {
        seen = await resend.emails.get(gone.data.id);
        if (seen.data && seen.data.last_event !== "queued") break;
        await new Promise((r) => setTimeout(r, 100));
    }
    check(seen && seen.data && seen.data.last_event === "suppressed",
        "resend emails.get: last_event suppressed (nothing sent)", JSON.stringify(seen));
}

main().catch((err) => { console.log(`FAIL ${err.stack || err}`); process.exit(1); });
