// contract.js BASE TOKEN TOKENLESS_BASE OPENAPI.json
//
// The API contract test: drives every endpoint of a running outboxd, to
// each of its answers (success and every error status it can give), and
// checks each response against docs/openapi.json with ajv (JSON Schema
// 2020-12, the dialect of OpenAPI 3.1; a validator no one here wrote):
//   - the status is one the operation declares;
//   - every header the response declares as required is there;
//   - the body has the declared media type and matches its schema.
// BASE is an outboxd with bearer TOKEN, --max-event-clients 0 (so that
// /v1/events answers 503) and small limits; TOKENLESS_BASE one without
// tokens (the 403s). Prints one line per check; exits 1 if any failed.
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020");
const addFormats = require("ajv-formats");

const [base, token, tokenless, docPath] = process.argv.slice(2);
const doc = JSON.parse(fs.readFileSync(docPath, "utf8"));
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(doc, "openapi");

let failures = 0, checks = 0;
const seen = new Set(); // "METHOD path status" covered
const esc = (s) => s.replace(/~/g, "~0").replace(/\//g, "~1");

function deref(obj, ptr) {
    while (obj && obj.$ref) {
        ptr = obj.$ref.slice(1);
        obj = ptr.split("/").slice(1).reduce((o, k) => o[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
    }
    return [obj, ptr];
}

function fail(what, why) {
    failures++;
    console.log(`FAIL ${what}: ${why}`);
}

// The operation a request went to: its path template and method.
function operation(method, path) {
    for (const [tpl, item] of Object.entries(doc.paths)) {
        const re = new RegExp("^" + tpl.replace(/\{[^}]+\}/g, "[^/]+") + "$");
        if (re.test(path) && item[method.toLowerCase()])
            return [tpl, item[method.toLowerCase()]];
    }
    return [null, null];
}

async function check(method, path, { body, headers = {}, auth = true, at = base, raw } = {}) {
    const h = { ...headers };
    if (auth && token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined && !h["Content-Type"]) h["Content-Type"] = "application/json";
    const ctl = new AbortController();
    const res = await fetch(at + path, {
        method, headers: h, signal: ctl.signal,
        body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    const what = `${method} ${path} -> ${res.status}`;
    checks++;
    const [tpl, op] = operation(method, path.split("?")[0]);
    if (!op) { fail(what, "no such operation in the document"); ctl.abort(); return res; }
    seen.add(`${method} ${tpl} ${res.status}`);
    const declared = op.responses[String(res.status)] || op.responses[`${String(res.status)[0]}XX`] ||
                     op.responses.default;
    if (!declared) { fail(what, `status not declared (${Object.keys(op.responses)})`); ctl.abort(); return res; }
    const [resp, ptr] = deref(declared, `/paths/${esc(tpl)}/${method.toLowerCase()}/responses/${res.status}`);
    for (const [name, hd] of Object.entries(resp.headers || {})) {
        const [hdr] = deref(hd, "");
        if (hdr.required && !res.headers.get(name))
            fail(what, `required header ${name} missing`);
    }
    const ctype = (res.headers.get("content-type") || "").split(";")[0].trim();
    if (ctype === "text/event-stream") { ctl.abort(); res.json = null; return res; }
    const text = await res.text();
    res.data = undefined;
    if (!resp.content) {
        if (text.length) fail(what, "a body where none is declared");
        return res;
    }
    if (!resp.content[ctype]) { fail(what, `content type ${ctype} not declared (${Object.keys(resp.content)})`); return res; }
    const schema = resp.content[ctype].schema;
    if (ctype !== "application/json") return res;
    try { res.data = JSON.parse(text); } catch (e) { fail(what, `not JSON: ${text.slice(0, 100)}`); return res; }
    if (schema) {
        const v = ajv.compile({ $ref: `openapi#${ptr}/content/${esc(ctype)}/schema` });
        if (!v(res.data))
            fail(what, `${ajv.errorsText(v.errors, { separator: "; " })}\n  body: ${text.slice(0, 400)}`);
    }
    return res;
}

const job = (extra = {}) => ({ kind: "http.request", payload: { url: "http://127.0.0.1:9/" }, ...extra });
const msg = (extra = {}) => ({ from: "a@example.com", to: "b@example.com", subject: "s", text: "t", ...extra });

async function main() {
    // health, metrics, the contract itself
    await check("GET", "/healthz", { auth: false });
    await check("GET", "/readyz", { auth: false });
    await check("GET", "/metrics");
    await check("GET", "/v1/openapi.json", { auth: false });

    // POST /v1/jobs
    const a = await check("POST", "/v1/jobs", { body: job({ delay: 3600 }) });          // 202
    const id = a.data.id;
    await check("POST", "/v1/jobs", { body: job(), headers: { Prefer: "wait=1" } });   // 202, waited
    await check("POST", "/v1/jobs", { body: job(), headers: { "Idempotency-Key": "k1" } });
    await check("POST", "/v1/jobs", { body: job(), headers: { "Idempotency-Key": "k1" } });           // 200
    await check("POST", "/v1/jobs", { body: job({ delay: 1 }), headers: { "Idempotency-Key": "k1" } }); // 409
    await check("POST", "/v1/jobs", { body: "{bad", raw: true });                       // 400
    await check("POST", "/v1/jobs", { body: job(), auth: false });                      // 401
    await check("POST", "/v1/jobs", { body: job({ payload: { url: "http://127.0.0.1:9/", body: "x".repeat(6000) } }) }); // 413
    await check("POST", "/v1/jobs", { body: "{}", raw: true, headers: { "Content-Type": "text/plain" } }); // 415
    await check("POST", "/v1/jobs", { body: { kind: "http.request", bogus: 1 } });      // 422
    await check("POST", "/v1/jobs", { body: job(), headers: { Origin: "http://evil.example" }, at: tokenless, auth: false }); // 403

    // POST /v1/jobs/batch
    await check("POST", "/v1/jobs/batch", { body: { jobs: [job(), { kind: "nope" }] } }); // 200
    await check("POST", "/v1/jobs/batch", { body: { jobs: [job(), job(), job(), job(), job()] } }); // 413
    await check("POST", "/v1/jobs/batch", { body: { jobs: [] } });                       // 422
    await check("POST", "/v1/jobs/batch", { body: "[", raw: true });                     // 400
    await check("POST", "/v1/jobs/batch", { body: { jobs: [job()] }, auth: false });     // 401

    // GET /v1/jobs/{id}, GET /v1/jobs
    await check("GET", `/v1/jobs/${id}`);                                               // 200
    await check("GET", `/v1/jobs/${id}`, { headers: { Prefer: "wait=1" } });            // 200 after the wait
    await check("GET", "/v1/jobs/01a21216-0000-7000-8000-000000000000");                // 404
    await check("GET", "/v1/jobs/not-an-id");                                           // 400
    await check("GET", `/v1/jobs/${id}`, { auth: false });                              // 401
    await check("GET", "/v1/jobs?state=scheduled&limit=1");                             // 200
    await check("GET", "/v1/jobs?state=nonsense");                                      // 400
    await check("GET", "/v1/jobs?search=someone%40example.com&created_after=2020-01-01T00:00:00Z"); // 200
    await check("GET", "/v1/jobs?created_before=soon");                                 // 400

    // cancel, retry
    await check("POST", `/v1/jobs/${id}/retry`);                                        // 200: run now
    await check("POST", `/v1/jobs/${id}/cancel`);                                       // 200
    await check("POST", `/v1/jobs/${id}/cancel`);                                       // 409
    await check("POST", "/v1/jobs/01a21216-0000-7000-8000-000000000000/retry");         // 404
    const done = await check("POST", "/v1/jobs", { body: job({ max_attempts: 1 }),
                                                  headers: { Prefer: "wait=20" } });   // 200: discarded
    await check("POST", `/v1/jobs/${done.data.id}/cancel`);                             // 409: final
    await check("POST", "/v1/jobs/nope/cancel");                                        // 400

    // many at once
    await check("POST", "/v1/jobs/retry", { body: { state: "discarded", limit: 1 } });   // 200
    await check("POST", "/v1/jobs/cancel", { body: { ids: [done.data.id, id] } });      // 200
    await check("POST", "/v1/jobs/cancel", { body: { state: ["scheduled"], queue: "default" } }); // 200
    await check("POST", "/v1/jobs/retry", { body: { state: "discarded", search: "x@example.com", created_after: "2020-01-01T00:00:00Z" } }); // 200
    await check("POST", "/v1/jobs/retry", { body: { created_before: "never" } });       // 422
    await check("POST", "/v1/jobs/retry", { body: { state: "nonsense" } });             // 422
    await check("POST", "/v1/jobs/retry", { body: { ids: [id], state: "discarded" } }); // 422
    await check("POST", "/v1/jobs/retry", { body: "{", raw: true });                    // 400
    await check("POST", "/v1/jobs/retry", { body: {}, auth: false });                   // 401

    // queues
    await check("PATCH", "/v1/queues/contract", { body: { paused: true, concurrency: 2, rate: { limit: 10, period: 1 }, key_rate: { limit: 1, period: 0.5 } } }); // 200
    await check("POST", "/v1/jobs", { body: job({ queue: "contract", rate_key: "https://a.example:443" }) }); // 202
    await check("GET", "/v1/queues/contract");                                          // 200
    await check("GET", "/v1/queues");                                                   // 200
    await check("PATCH", "/v1/queues/contract", { body: { paused: false, concurrency: null, rate: null, key_rate: null } }); // 200
    await check("POST", "/v1/jobs", { body: job({ rate_key: "no \"quotes\"" }) });      // 422
    await check("PATCH", "/v1/queues/contract", { body: { concurrency: 0 } });          // 422
    await check("PATCH", "/v1/queues/contract", { body: { speed: 1 } });                // 422
    await check("PATCH", "/v1/queues/contract", { body: "{", raw: true });              // 400
    await check("GET", "/v1/queues/bad%20name");                                        // 422
    await check("GET", "/v1/queues", { auth: false });                                  // 401

    // the overview's stats and nodes
    await check("GET", "/v1/stats");                                                    // 200
    await check("GET", "/v1/stats?seconds=5");                                          // 200
    await check("GET", "/v1/stats?seconds=301");                                        // 422
    await check("GET", "/v1/stats", { auth: false });                                   // 401
    await check("GET", "/v1/nodes");                                                    // 200
    await check("GET", "/v1/nodes", { auth: false });                                   // 401

    // schedules
    const sj = { kind: "http.request", payload: { url: "http://127.0.0.1:9/" } };
    await check("PUT", "/v1/schedules/contract", { body: { cron: "0 3 * * *", timezone: "Europe/Berlin", job: sj, missed: "latest" } }); // 201
    await check("PUT", "/v1/schedules/contract", { body: { cron: "0 3 * * *", job: { ...sj, callback_url: "http://127.0.0.1:9/cb" } } }); // 200
    await check("PUT", "/v1/schedules/every", { body: { cron: "* * * * * *", job: sj } }); // 201
    await check("GET", "/v1/schedules/contract");                                       // 200
    await check("GET", "/v1/schedules");                                                // 200
    await check("POST", "/v1/schedules/contract/pause");                                // 200
    await check("POST", "/v1/schedules/contract/resume");                               // 200
    await check("PUT", "/v1/schedules/contract", { body: { cron: "61 * * * *", job: sj } }); // 422
    await check("PUT", "/v1/schedules/contract", { body: { cron: "@daily", job: { ...sj, delay: 1 } } }); // 422
    await check("PUT", "/v1/schedules/contract", { body: "{", raw: true });             // 400
    await check("PUT", "/v1/schedules/contract", { body: {}, auth: false });            // 401
    await check("GET", "/v1/schedules/none");                                           // 404
    await check("GET", "/v1/schedules/bad%20name");                                     // 422
    await check("POST", "/v1/schedules/none/pause");                                    // 404
    await check("DELETE", "/v1/schedules/contract");                                    // 204
    await check("DELETE", "/v1/schedules/contract");                                    // 404
    await new Promise((ok) => setTimeout(ok, 1500));
    const made = await check("GET", "/v1/jobs?limit=5");                                // a job of "every"
    if (!made.data.jobs.some((j) => j.schedule === "every" && j.scheduled_for))
        fail("GET /v1/jobs", "no job made by the schedule \"every\" shows its schedule");
    await check("DELETE", "/v1/schedules/every");                                       // 204

    // events
    await check("GET", "/v1/events?id=nope");                                           // 400
    await check("GET", "/v1/events");                                                   // 503 (no slots)

    // messages
    const m = await check("POST", "/v1/messages", { body: msg() });                     // 202
    await check("POST", "/v1/messages", { body: msg(), headers: { Prefer: "wait=10" } }); // 200
    await check("POST", "/v1/messages", { body: msg({ subject: "x\r\nBcc: e@example.com" }) }); // 422
    await check("POST", "/v1/messages", { body: msg({ cc: ["c@example.com", "d@example.com", "e@example.com"] }) }); // 413
    await check("POST", "/v1/messages", { body: msg(), headers: { "Idempotency-Key": "m1" } });
    await check("POST", "/v1/messages", { body: msg(), headers: { "Idempotency-Key": "m1" } });  // 200
    await check("POST", "/v1/messages", { body: msg({ text: "u" }), headers: { "Idempotency-Key": "m1" } }); // 409
    await check("POST", "/v1/messages/batch", { body: { messages: [msg(), { from: "x" }] } });  // 200
    await check("POST", "/v1/messages/batch", { body: { messages: [] } });              // 422
    await check("GET", `/v1/messages/${m.data.id}`);                                    // 200
    const raw = await check("GET", `/v1/messages/${m.data.id}/raw`);                    // 200
    if (!/^Content-Disposition/im.test([...raw.headers].map(([k, v]) => `${k}: ${v}`).join("\n")))
        fail("GET /v1/messages/{id}/raw", "no Content-Disposition");
    await check("GET", `/v1/messages/${id}/raw`);                                       // 404: not a message
    await check("GET", "/v1/messages/nope/raw");                                        // 400
    await check("GET", `/v1/messages/${id}`);                                           // 404: not a message
    await check("GET", "/v1/messages/nope");                                            // 400

    // suppressions
    await check("PUT", "/v1/suppressions/x%40Example.com", { body: { reason: "unsubscribe", note: "asked" } }); // 201
    await check("PUT", "/v1/suppressions/x%40example.com", { body: { reason: "spam_complaint" } }); // 200
    await check("PUT", "/v1/suppressions/y%40example.com");                             // 201, no body
    await check("PUT", "/v1/suppressions/nobody", { body: {} });                        // 422
    await check("PUT", "/v1/suppressions/z%40example.com", { body: { why: 1 } });       // 422
    await check("PUT", "/v1/suppressions/z%40example.com", { body: "{", raw: true });   // 400
    await check("PUT", "/v1/suppressions/z%40example.com", { body: "{}", raw: true, headers: { "Content-Type": "text/plain" } }); // 415
    await check("PUT", "/v1/suppressions/z%40example.com", { body: {}, auth: false });  // 401
    const sl = await check("GET", "/v1/suppressions?limit=1");                           // 200, a cursor
    await check("GET", `/v1/suppressions?limit=1&cursor=${sl.data.next_cursor}`);       // 200
    await check("GET", "/v1/suppressions?reason=spam_complaint&address=EXAMPLE");       // 200
    await check("GET", "/v1/suppressions?reason=nope");                                 // 422
    await check("GET", "/v1/suppressions/x%40example.com");                             // 200
    await check("GET", "/v1/suppressions/q%40example.com");                             // 404
    await check("GET", "/v1/suppressions/nobody");                                      // 422
    await check("DELETE", "/v1/suppressions/x%40EXAMPLE.com");                          // 204
    await check("DELETE", "/v1/suppressions/x%40example.com");                          // 404
    await check("DELETE", "/v1/suppressions/nobody");                                   // 422

    // every operation of the document was reached at least once
    for (const [tpl, item] of Object.entries(doc.paths))
        for (const method of Object.keys(item))
            if (![...seen].some((s) => s.startsWith(`${method.toUpperCase()} ${tpl} `)))
                fail(`${method.toUpperCase()} ${tpl}`, "never exercised");
    console.log(`${checks} responses checked against ${docPath}, ${failures} failed`);
    console.log(`covered: ${[...seen].sort().join(", ")}`);
    process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.log(`FAIL ${e.stack}`); process.exit(1); });
