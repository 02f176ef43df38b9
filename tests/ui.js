// ui.js - the dashboard in a real browser: Debian's Chromium driven by
// playwright-core, against a real outboxd (started by tests/test_ui.c).
//
//   node tests/ui.js URL TOKEN SHOTS_DIR
//
// Checks: signing in with the token; the overview's counts changing live
// as jobs are enqueued from outside (no reload); pausing a queue from the
// page, seen by the API; a job's page showing a payload made to attack it
// (<script>, <img onerror>) as inert text; the jobs list filtered by state.
// Screenshots of the overview and a job go to SHOTS_DIR.
const { chromium } = require("playwright-core");

const [url, token, shots] = process.argv.slice(2);
let failures = 0;
const fail = (what) => { console.log(`FAIL ${what}`); failures++; };
const ok = (what) => console.log(`ok   ${what}`);

async function api(method, path, body) {
    const res = await fetch(`${url}/v1/${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, data: await res.json().catch(() => null) };
}

const job = (queue, payload) => api("POST", "jobs", {
    kind: "http.request", queue, delay: 3600, payload: { url: "https://example.com/hook", ...payload },
});

async function main() {
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss(); });
    page.on("console", (m) => { if (m.type() === "error" && !/401/.test(m.text())) errors.push(m.text()); });

    // sign in
    await page.goto(`${url}/ui/`);
    await page.waitForSelector("#token");
    ok("without a token, the page asks for one");
    await page.fill("#token", token);
    await page.press("#token", "Enter");
    await page.waitForSelector("#queues");
    ok("signed in: the overview");

    // live counts
    await job("mail");
    await page.waitForSelector('tr[data-queue="mail"] td[data-state="scheduled"]', { timeout: 10000 });
    const before = Number(await page.textContent('tr[data-queue="mail"] td[data-state="scheduled"]'));
    for (let i = 0; i < 3; i++) await job("mail");
    // (polled from here: the page's policy forbids the eval waitForFunction needs)
    let now = before;
    for (let i = 0; i < 100 && now !== before + 3; i++) {
        await new Promise((ok) => setTimeout(ok, 100));
        now = Number(await page.textContent('tr[data-queue="mail"] td[data-state="scheduled"]'));
    }
    now === before + 3 ? ok("counts change live, without a reload")
                       : fail(`the count did not change live: ${before} then ${now}`);

    // pause from the page
    await page.click('button[aria-label="Pause mail"]');
    await page.waitForSelector('button[aria-label="Resume mail"]');
    const q = await api("GET", "queues/mail");
    q.data && q.data.paused ? ok("paused from the page: the API says so") : fail("the queue is not paused");
    if (shots) await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

    // an attack in a payload is text
    const attack = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
    const j = await job("evil", { body: attack, headers: { "X-Note": attack } });
    await page.goto(`${url}/ui/#/job/${j.data.id}`);
    await page.waitForSelector("#payload");
    const shown = await page.textContent("#payload");
    const xss = await page.evaluate(() => window.__xss);
    const imgs = await page.locator("main img").count();
    shown.includes("<script>") && xss === undefined && imgs === 0
        ? ok("a payload of <script> and <img onerror> is shown as text, inert")
        : fail(`XSS: xss=${xss} imgs=${imgs}`);
    if (shots) await page.screenshot({ path: `${shots}/job.png`, fullPage: true });

    // the jobs list, filtered
    await page.goto(`${url}/ui/#/jobs?state=scheduled&queue=mail`);
    await page.waitForSelector("#jobs tbody tr");
    const rows = await page.locator("#jobs tbody tr").count();
    rows === before + 3 ? ok(`the list filtered by state and queue: ${rows} jobs`)
                        : fail(`the filtered list has ${rows} rows, not ${before + 3}`);

    errors.length ? fail(`errors on the page: ${errors.join("; ")}`) : ok("no error on the page");
    await browser.close();
    console.log(`${failures} failed`);
    process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.log(`FAIL ${e.stack}`); process.exit(1); });
