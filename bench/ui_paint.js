// ui_paint.js - bench/ui's browser half: fills an outboxd with N jobs and
// measures the dashboard before and after, in Debian's Chromium
// (playwright-core).
//
//   node bench/ui_paint.js URL N LOADS
//
// Each load is a new browser context (no cache, no session). Figures, the
// median of LOADS loads:
//   first contentful paint   the page's frame (header, nav) on screen
//   overview painted         the overview's heading, which is drawn with
//                            its data (queues, stats, nodes: four API
//                            calls), by Element Timing
//   jobs list painted        the same for #/jobs (50 jobs, newest first)
//   bytes, first paint       everything the overview's first paint took
//                            over the wire: HTML, CSS, modules, API answers
//   GET /v1/queues, GET /v1/jobs?limit=50, GET /v1/jobs?search=...
//                            the API alone, from Node (keep-alive)
const { chromium } = require("playwright-core");

const [url, total, loads] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 5)];
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function post(path, body) {
    const res = await fetch(`${url}/v1/${path}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                  body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
    return res.json();
}

// N jobs in five queues, one in ten a message (so searches have terms to
// find), most available, some scheduled; 1,000 a request, eight at a time.
async function fill(n) {
    const queues = ["default", "hooks", "billing", "reports"];
    let made = 0, next = 0;
    const t0 = Date.now();
    async function worker() {
        for (;;) {
            const start = next;
            if (start >= n) return;
            const count = Math.min(1000, n - start);
            next += count;
            if ((start / 1000) % 10 === 9) {
                const messages = Array.from({ length: Math.min(count, 1000) }, (_, i) => ({
                    from: "shop@example.com", to: [`customer${start + i}@example.org`], subject: `Order ${start + i}`,
                    text: "Thank you for your order." }));
                await post("messages/batch", { messages });
            } else {
                const jobs = Array.from({ length: count }, (_, i) => ({
                    kind: "http.request", queue: queues[(start + i) % 4],
                    ...(i % 5 === 0 ? { delay: 86400 } : {}),
                    payload: { url: `https://example.com/hook/${start + i}`, method: "POST", body: "{}" } }));
                await post("jobs/batch", { jobs });
            }
            made += count;
            if (made % 100000 < 1000 && made >= 100000)
                console.error(`  ${made} jobs stored (${Math.round(made / ((Date.now() - t0) / 1000))}/s)`);
        }
    }
    await Promise.all(Array.from({ length: 8 }, worker));
    return (Date.now() - t0) / 1000;
}

async function load(browser, hash, id) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${url}/ui/${hash}`);
    await page.waitForSelector(`h1[elementtiming="${id}"]`);
    const r = await page.evaluate((id) => new Promise((ok) => {
        new PerformanceObserver((list) => {
            const e = list.getEntries().find((x) => x.identifier === id);
            if (!e) return;
            const fcp = performance.getEntriesByName("first-contentful-paint")[0];
            const nav = performance.getEntriesByType("navigation")[0];
            const res = performance.getEntriesByType("resource").filter((x) => x.responseEnd <= e.renderTime);
            const bytes = nav.transferSize + res.reduce((s, x) => s + x.transferSize, 0);
            const api = res.filter((x) => x.name.includes("/v1/")).reduce((s, x) => s + x.transferSize, 0);
            ok({ fcp: fcp ? fcp.startTime : NaN, painted: e.renderTime || e.loadTime, bytes, api });
        }).observe({ type: "element", buffered: true });
    }), id);
    await context.close();
    return r;
}

async function timeApi(path) {
    const t = [];
    for (let i = 0; i < 7; i++) {
        const t0 = performance.now();
        const res = await fetch(`${url}/v1/${path}`);
        await res.text();
        t.push(performance.now() - t0);
    }
    return median(t);
}

async function measure(browser, search) {
    const o = [], j = [];
    for (let i = 0; i < loads; i++) {
        o.push(await load(browser, "", "overview"));
        j.push(await load(browser, "#/jobs", "jobs"));
    }
    return {
        fcp: median(o.map((x) => x.fcp)), overview: median(o.map((x) => x.painted)),
        jobs: median(j.map((x) => x.painted)), bytes: median(o.map((x) => x.bytes)), api: median(o.map((x) => x.api)),
        queues: await timeApi("queues"), list: await timeApi("jobs?limit=50"),
        search: await timeApi(`jobs?search=${encodeURIComponent(search)}`),
    };
}

async function main() {
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    await load(browser, "", "overview"); // warm the browser and outboxd once
    const empty = await measure(browser, "customer9000@example.org");
    console.error(`filling the store with ${total} jobs`);
    const secs = await fill(total);
    console.log(`stored ${total} jobs in ${secs.toFixed(1)} s (${Math.round(total / secs)}/s)`);
    const big = await measure(browser, "customer9000@example.org");
    await browser.close();
    const rows = [
        ["first contentful paint (ms)", "fcp"], ["overview painted, with its data (ms)", "overview"],
        ["jobs list painted (ms)", "jobs"], ["GET /v1/queues (ms)", "queues"], ["GET /v1/jobs?limit=50 (ms)", "list"],
        ["GET /v1/jobs?search=RECIPIENT (ms)", "search"], ["bytes for the overview's first paint", "bytes"],
        ["  of which API answers", "api"]];
    console.log(`\n| figure | empty store | ${total.toLocaleString("en")} jobs | ratio |\n|---|---:|---:|---:|`);
    for (const [name, k] of rows)
        console.log(`| ${name} | ${empty[k].toFixed(k === "bytes" || k === "api" ? 0 : 1)} | ${big[k].toFixed(k === "bytes" || k === "api" ? 0 : 1)} | ${(big[k] / empty[k]).toFixed(2)}x |`);
    const target = big.overview < 300;
    console.log(`\ntarget: overview painted with its data under 300 ms at ${total} jobs: ${big.overview.toFixed(0)} ms ${target ? "met" : "MISSED"}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
