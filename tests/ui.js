// ui.js - the dashboard in a real browser: Debian's Chromium driven by
// playwright-core, against a real outboxd (started by tests/test_ui.c with
// a token, two workers, mail to smtp_relay.py: 250, or 550 to rcpt550-*).
//
//   node tests/ui.js URL TOKEN SHOTS_DIR
//
// This script runs the webhook target the http.request jobs call (on
// 127.0.0.1, a free port): /ok answers 200, /flaky 400 until told
// otherwise. What it checks, each as an operator would do it in the page:
// signing in; counts changing live as jobs come from outside; pausing a
// queue (nothing starts) and resuming it; changing a queue's limits; the
// health strip, nodes and sparklines; search by recipient, Message-ID and
// unique key; a message's recipients with each SMTP reply (250 and 550),
// its headers, its html in a sandboxed frame, its .eml downloaded; attacks
// in a payload, a subject and an html body staying inert; bulk retry of
// discarded jobs (they complete) and cancelling selected ones; a job's
// timeline and attempts with durations, its callback delivery; the forms;
// schedules; a dropped event stream resumed with Last-Event-ID; a phone
// width, the keyboard, dark mode; no error on the page. Screenshots:
// overview.png, job.png, message.png, overview-phone.png, overview-dark.png.
const http = require("http");
const fs = require("fs");
const { chromium } = require("playwright-core");

const [url, token, shots] = process.argv.slice(2);
let failures = 0;
const fail = (what) => { console.log(`FAIL ${what}`); failures++; };
const ok = (what) => console.log(`ok   ${what}`);
const check = (cond, what, why) => (cond ? ok(what) : fail(`${what}: ${why}`));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, path, body) {
    const res = await fetch(`${url}/v1/${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, data: await res.json().catch(() => null) };
}

// Poll fn (async, truthy when done) every 100 ms for up to `ms`; the last
// value. (The page's policy forbids the eval that waitForFunction needs.)
async function until(fn, ms = 10000) {
    let v;
    for (const end = Date.now() + ms; !(v = await fn()) && Date.now() < end;) await sleep(100);
    return v;
}

// the webhook target
let broken = true;
const target = http.createServer((req, res) => {
    req.resume();
    res.writeHead(req.url === "/flaky" && broken ? 400 : 200, { "Content-Type": "text/plain" });
    res.end("ok");
});

async function main() {
    await new Promise((r) => target.listen(0, "127.0.0.1", r));
    const hook = (path) => `http://127.0.0.1:${target.address().port}${path}`;
    const job = (queue, extra = {}, payload = {}) => api("POST", "jobs", {
        kind: "http.request", queue, ...extra, payload: { url: hook("/ok"), ...payload } });
    const state = async (id) => (await api("GET", `jobs/${id}`)).data.state;
    // A job's page, with nothing of the page before it left to be found
    // (moving between two jobs is a hash change: the old page stays until
    // the new one is drawn).
    const openJob = async (id) => {
        await page.evaluate(() => document.getElementById("main").replaceChildren());
        await page.goto(`${url}/ui/#/job/${id}`);
    };

    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss(); });
    // Expected in the console: the 401 before signing in, the 422 of the bad
    // test message, and the sandbox refusing the message's script (counted).
    let blocked = 0;
    page.on("console", (m) => {
        if (m.type() !== "error" || /status of (401|422)/.test(m.text())) return;
        if (/Blocked script execution in 'about:srcdoc'.*sandboxed/.test(m.text())) blocked++;
        else errors.push(m.text());
    });
    const text = (sel) => page.textContent(sel);

    // ---- sign in ----
    await page.goto(`${url}/ui/`);
    await page.waitForSelector("#token");
    ok("without a token, the page asks for one");
    await page.fill("#token", token);
    await page.press("#token", "Enter");
    await page.waitForSelector("#queues");
    ok("signed in: the overview");

    // ---- counts change live ----
    await job("hooks", { delay: 3600 });
    const cell = 'tr[data-queue="hooks"] td[data-state="scheduled"]';
    await page.waitForSelector(cell, { timeout: 10000 });
    const before = Number(await text(cell));
    for (let i = 0; i < 3; i++) await job("hooks", { delay: 3600 });
    const now = await until(async () => Number(await text(cell)) === before + 3);
    check(now, "counts change live, without a reload", `${before} then ${await text(cell)}`);

    // ---- pause: nothing starts; resume: it runs ----
    await page.click('button[aria-label="Pause hooks"]');
    await page.waitForSelector('button[aria-label="Resume hooks"]');
    check((await api("GET", "queues/hooks")).data.paused, "paused from the page: the API says so", "not paused");
    const held = (await job("hooks")).data.id;
    await sleep(1500);
    const avail = 'tr[data-queue="hooks"] td[data-state="available"]';
    check(await state(held) === "available" && Number(await text(avail)) === 1,
        "a paused queue starts nothing (the page shows the job waiting)", `${await state(held)}, ${await text(avail)}`);
    await page.click('button[aria-label="Resume hooks"]');
    check(await until(async () => await state(held) === "completed"), "resumed from the page: the job runs",
        await state(held));

    // ---- limits ----
    await page.click('button[aria-label="Limits of hooks"]');
    await page.fill('input[aria-label="Concurrency of hooks"]', "3");
    await page.fill('input[aria-label="Rate limit of hooks"]', "100");
    await page.fill('input[aria-label="Rate period in seconds of hooks"]', "60");
    await page.press('input[aria-label="Rate period in seconds of hooks"]', "Enter");
    const limited = await until(async () => {
        const q = (await api("GET", "queues/hooks")).data;
        return q.concurrency === 3 && q.rate && q.rate.limit === 100 && q.rate.period === 60;
    });
    check(limited, "limits changed from the page (concurrency 3, 100 a minute)", "the API disagrees");

    // ---- health, nodes, sparklines ----
    await page.waitForSelector("#ready");
    const ready = await text("#ready");
    const nodes = await page.locator("#nodes tbody tr").count();
    const sparks = await page.locator("svg.spark").count();
    const version = await text("#version");
    check(ready === "ready" && nodes === 1 && sparks >= 3 && /^outbox \d/.test(version),
        "health, version, this node and the throughput sparklines", `${ready}, ${nodes} nodes, ${sparks} sparklines, ${version}`);
    const started = await page.getAttribute("section.health svg.spark", "aria-label");
    check(/highest [1-9]/.test(started), "the started-a-second line shows the jobs that ran", started);

    // ---- a message: each recipient's reply ----
    const sent = await api("POST", "messages", {
        from: "shop@example.com", to: ["ann@example.org", "rcpt550-bob@example.org"],
        subject: "Your order <script>window.__xss=3</script>",
        text: "Thank you.",
        html: "<p>Thank you.</p><script>parent.__xss=4</script><img src=x onerror=\"parent.__xss=5\">",
        attachments: [{ filename: "receipt.txt", content_type: "text/plain", content: "cmVjZWlwdA==" }],
    });
    const mid = sent.data.id, msgId = sent.data.message_id;
    await until(async () => (await state(mid)) === "completed");
    await openJob(`${mid}`);
    await page.waitForSelector("#recipients");
    const rcpt = async (addr, field) => text(`#recipients tr[data-address="${addr}"] td[data-field="${field}"]`);
    const replies = await until(async () => (await rcpt("ann@example.org", "state")) === "delivered"
        && (await rcpt("rcpt550-bob@example.org", "state")) === "bounced");
    check(replies && await rcpt("ann@example.org", "code") === "250"
        && await rcpt("rcpt550-bob@example.org", "code") === "550"
        && await rcpt("rcpt550-bob@example.org", "enhanced") === "5.1.1"
        && (await rcpt("rcpt550-bob@example.org", "reply")).length > 0,
        "a message shows each recipient's SMTP reply: 250 delivered, 550 5.1.1 bounced",
        `${await rcpt("ann@example.org", "state")} ${await rcpt("rcpt550-bob@example.org", "code")}`);
    const headers = await text("#message-headers");
    check(headers.includes("Your order <script>") && headers.includes(msgId.slice(1, -1)),
        "its headers, the subject's <script> shown as text", headers);
    const sandbox = await page.getAttribute("#message-html", "sandbox");
    const frameImgs = await page.frameLocator("#message-html").locator("img").count();
    const xss = await page.evaluate(() => window.__xss);
    check(sandbox === "" && frameImgs === 1 && xss === undefined && await page.locator("main img").count() === 0
        && blocked > 0, "its html in a sandboxed frame: <script> and <img onerror> inert (the browser refused them)",
        `sandbox=${sandbox} xss=${xss} blocked=${blocked}`);
    check((await text("#attachments")).includes("receipt.txt"), "its attachments listed", "no receipt.txt");
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click("text=Download .eml")]);
    const eml = fs.readFileSync(await dl.path(), "utf8");
    check(dl.suggestedFilename() === `${mid}.eml` && eml.includes(`Message-Id: ${msgId}`) && eml.includes("receipt.txt"),
        "its .eml downloads (the token sent, the MIME as sent)", dl.suggestedFilename());
    await page.frameLocator("#message-html").locator("text=Thank you.").waitFor();
    if (shots) await page.screenshot({ path: `${shots}/message.png`, fullPage: true });

    // ---- search ----
    const keyed = (await job("hooks", { unique_key: "order-77", delay: 3600 })).data.id;
    const search = async (q) => {
        await page.goto(`${url}/ui/#/jobs`);
        await page.fill("#search", q);
        await page.press("#search", "Enter");
        await until(async () => page.url().includes(`search=${encodeURIComponent(q).replace(/%20/g, "+")}`));
        await page.waitForSelector("#jobs tbody tr");
        await sleep(200);
        const ids = await page.locator("#jobs tbody tr[data-id]").evaluateAll((rows) => rows.map((r) => r.dataset.id));
        return ids;
    };
    let found = await search("ANN@example.org");
    check(found.length === 1 && found[0] === mid, "search by a recipient (any case) finds the message", found);
    found = await search(msgId);
    check(found.length === 1 && found[0] === mid, "search by Message-ID finds it", found);
    found = await search("order-77");
    check(found.length === 1 && found[0] === keyed, "search by unique key", found);
    found = await search(keyed);
    check(found.length === 1 && found[0] === keyed, "search by id", found);

    // ---- bulk retry of discarded jobs ----
    const bad = [];
    for (let i = 0; i < 3; i++) bad.push((await job("bulk", {}, { url: hook("/flaky") })).data.id);
    check(await until(async () => (await Promise.all(bad.map(state))).every((s) => s === "discarded")),
        "three jobs discarded (their target answered 400)", "not discarded");
    broken = false;
    await page.goto(`${url}/ui/#/jobs?state=discarded&queue=bulk`);
    await page.waitForSelector('#jobs tbody tr[data-id]');
    check(await page.locator("#jobs tbody tr[data-id]").count() === 3, "the list filtered by state and queue", "not 3 rows");
    await page.click("text=Retry all matching");
    check(await until(async () => (await Promise.all(bad.map(state))).every((s) => s === "completed")),
        "'Retry all matching' retried them, and they completed", (await Promise.all(bad.map(state))).join());
    check(await until(async () => /3 of 3/.test(await text("#bulk-status"))), "the page says how many changed",
        await text("#bulk-status"));

    // ---- a job's timeline and attempts ----
    await openJob(`${bad[0]}`);
    await page.waitForSelector("#attempts");
    const attempts = await page.locator("#attempts tbody tr").allTextContents();
    const steps = await page.locator("#timeline li").count();
    check(attempts.length === 2 && /400/.test(attempts[0]) && /completed/.test(attempts[1]) && steps >= 5,
        "a job's attempts (each with its outcome and time taken) and its timeline", `${attempts.join(" | ")}; ${steps} steps`);
    if (shots) await page.screenshot({ path: `${shots}/job.png`, fullPage: true });

    // ---- a job's callbacks ----
    const called = (await job("hooks", { callback_url: hook("/ok") })).data.id;
    await until(async () => (await state(called)) === "completed");
    await openJob(`${called}`);
    const cb = await until(async () => (await page.locator("#callbacks tbody tr td.s-completed").count()) === 1);
    check(cb, "a job's callback delivery listed with its state (it updates live)",
        await page.locator("#callbacks").count() ? await text("#callbacks") : "no #callbacks");

    // ---- an attack in a payload is text ----
    const attack = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
    const evil = await job("evil", { delay: 3600 }, { body: attack, headers: { "X-Note": attack } });
    await openJob(`${evil.data.id}`);
    await page.waitForSelector("#payload");
    const shown = await text("#payload");
    check(shown.includes("<script>") && await page.evaluate(() => window.__xss) === undefined
        && await page.locator("main img").count() === 0,
        "a payload of <script> and <img onerror> is shown as text, inert", "it ran");

    // ---- cancel the selected ----
    const sel = [(await job("sel", { delay: 3600 })).data.id, (await job("sel", { delay: 3600 })).data.id];
    await page.goto(`${url}/ui/#/jobs?queue=sel`);
    await page.waitForSelector('#jobs tbody tr[data-id]');
    for (const id of sel) await page.check(`input[aria-label="Select ${id}"]`);
    await page.click("text=Cancel selected");
    check(await until(async () => (await Promise.all(sel.map(state))).every((s) => s === "cancelled")),
        "two jobs selected and cancelled", "not cancelled");

    // ---- the forms, and a job's page following it live ----
    await page.goto(`${url}/ui/#/new`);
    await page.fill('#job-form textarea[name="payload"]', JSON.stringify({ url: hook("/ok") }));
    await page.fill('#job-form input[name="queue"]', "forms");
    await page.click('#job-form button[type="submit"]');
    await page.waitForSelector("#job-state");
    const live = await until(async () => (await text("#job-state")) === "completed");
    check(live && /#\/job\//.test(page.url()), "a job enqueued from the form; its page turned completed live",
        await text("#job-state"));
    await page.goto(`${url}/ui/#/new`);
    await page.fill('#message-form input[name="from"]', "dash@example.com");
    await page.fill('#message-form input[name="to"]', "x");
    await page.click('#message-form button[type="submit"]');
    await until(async () => (await text("#message-form-status")).length > 0);
    check(/^to/.test(await text("#message-form-status")), "a bad test message: the error names its field",
        await text("#message-form-status"));
    await page.fill('#message-form input[name="to"]', "carol@example.org");
    await page.click('#message-form button[type="submit"]');
    await page.waitForSelector("#recipients");
    check(await until(async () => (await rcpt("carol@example.org", "state")) === "delivered"),
        "a test message sent from the form, delivered", await rcpt("carol@example.org", "state"));

    // ---- schedules ----
    await api("PUT", "schedules/nightly", { cron: "0 3 * * *", timezone: "UTC", job: { kind: "http.request",
        queue: "hooks", payload: { url: hook("/ok") } } });
    await page.goto(`${url}/ui/#/schedules`);
    await page.waitForSelector('tr[data-schedule="nightly"]');
    await page.click('button[aria-label="Pause nightly"]');
    check(await until(async () => (await api("GET", "schedules/nightly")).data.paused),
        "a schedule listed with its next runs, paused from the page", "not paused");

    // ---- a dropped stream resumes with Last-Event-ID ----
    // The first stream after a reload is served here: one event (id 7),
    // then its end, as when a proxy or a restart cuts it; the page must
    // come back to outboxd with Last-Event-ID: 7.
    await page.goto(`${url}/ui/#/`);
    await page.waitForSelector("#queues");
    const resumes = [];
    let served = false;
    await page.route("**/v1/events", async (route) => {
        resumes.push(route.request().headers()["last-event-id"] || "");
        if (served) return route.continue();
        served = true;
        await route.fulfill({ status: 200, headers: { "Content-Type": "text/event-stream" },
                              body: 'id: 7\nevent: job\ndata: {"id":"x"}\n\n' });
    });
    await page.reload();
    await page.waitForSelector("#queues");
    const resumed = await until(async () => resumes.includes("7") && (await text("#live")) === "live", 15000);
    check(resumed, "a dropped event stream reconnects with Last-Event-ID", JSON.stringify(resumes));
    await page.unroute("**/v1/events");

    // ---- the overview after all that (the README's picture) ----
    await page.goto(`${url}/ui/#/`);
    await page.waitForSelector('tr[data-queue="bulk"]');
    await sleep(500);
    if (shots) await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

    // ---- phone width, keyboard, dark ----
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${url}/ui/#/`);
    await page.waitForSelector("#queues");
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 392, "at a phone's width the page does not scroll sideways (tables scroll in place)", `${wide}px`);
    if (shots) await page.screenshot({ path: `${shots}/overview-phone.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${url}/ui/#/jobs`);
    await page.waitForSelector("#search");
    await page.focus("#search");
    await page.keyboard.type("order-77");
    await page.keyboard.press("Enter");
    await until(async () => page.url().includes("search=order-77")
        && (await page.locator("#jobs tbody tr[data-id]").count()) === 1);
    await sleep(200);
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.tagName);
    check(/^(SELECT|INPUT|BUTTON|A)$/.test(focused), "searched with the keyboard alone; focus moves on with Tab", focused);
    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(`${url}/ui/#/`);
    await page.waitForSelector("#queues");
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(bg !== "rgb(255, 255, 255)", "dark mode follows the system", bg);
    if (shots) await page.screenshot({ path: `${shots}/overview-dark.png`, fullPage: true });

    check(!errors.length, "no error on the page", errors.join("; "));
    await browser.close();
    target.close();
    console.log(`${failures} failed`);
    process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.log(`FAIL ${e.stack}`); process.exit(1); });
