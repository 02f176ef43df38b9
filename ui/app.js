// app.js - the outbox dashboard: plain JavaScript modules, no build step,
// served by outboxd from assets embedded in its binary (ui/, embedded by
// cmake/embed_ui.cmake). It uses only the public HTTP API (/v1/...), so
// everything it shows or does can be scripted too.
//
// Safety: every value from the API is put on the page as text
// (textContent, attribute values), never as HTML; the page's
// Content-Security-Policy forbids inline scripts besides.
// Auth: with tokens, the sign-in form keeps the token in sessionStorage
// and sends it as a bearer header (never a cookie: no CSRF).

const main = document.getElementById("main");
const TOKEN = "outbox.token";

// ---- the API ----

class ApiError extends Error {
    constructor(status, body) {
        super((body && body.error && body.error.message) || `HTTP ${status}`);
        this.status = status;
        this.field = body && body.error && body.error.field;
    }
}

function headers(extra = {}) {
    const t = sessionStorage.getItem(TOKEN);
    return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function api(method, path, body) {
    const res = await fetch(`../v1/${path}`, {
        method,
        headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (res.status === 401) {
        signIn("This outboxd wants a token.");
        throw new ApiError(401, data);
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
}

// ---- building the page: text only ----

function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (k === "onclick" || k === "onsubmit" || k === "onchange") e.addEventListener(k.slice(2), v);
        else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
        if (c === null || c === undefined || c === false) continue;
        e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
}

function show(...nodes) {
    main.replaceChildren(...nodes);
}

function fail(e) {
    if (e.status === 401) return;
    show(el("p", { class: "error", role: "alert" }, `Error: ${e.message}`));
}

const when = (t) => (t ? new Date(t).toLocaleString() : "—");
const age = (s) => (s === null || s === undefined ? "—" : s < 60 ? `${s.toFixed(1)} s`
    : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
const rate = (r) => (r ? `${r.limit}/${r.period}s` : "—");
const STATES = ["scheduled", "available", "running", "retryable", "completed", "discarded", "cancelled"];

function button(label, action, attrs = {}) {
    return el("button", { type: "button", ...attrs, onclick: async (ev) => {
        ev.target.disabled = true;
        try { await action(); } catch (e) { alert(e.message); } finally { ev.target.disabled = false; }
    } }, label);
}

// ---- sign-in ----

function signIn(why) {
    const input = el("input", { type: "password", id: "token", autocomplete: "current-password",
                                required: true, "aria-label": "Token" });
    show(el("form", { class: "signin", onsubmit: (ev) => {
        ev.preventDefault();
        sessionStorage.setItem(TOKEN, input.value.trim());
        route();
    } }, el("h1", {}, "Sign in"), el("p", { class: "muted" }, why),
    el("label", { for: "token" }, "Bearer token"), input, el("button", { type: "submit" }, "Sign in")));
    input.focus();
}

// ---- overview: queues and schedules ----

async function overview() {
    const [{ queues }, { schedules }] = await Promise.all([api("GET", "queues"), api("GET", "schedules")]);
    const rows = queues.map((q) => el("tr", { "data-queue": q.name },
        el("th", { scope: "row" }, el("a", { href: `#/jobs?queue=${encodeURIComponent(q.name)}` }, q.name)),
        ...STATES.map((s) => el("td", { class: `num s-${s}`, "data-state": s }, q.counts[s])),
        el("td", { class: "num" }, age(q.oldest_due_age)),
        el("td", { class: "hide-narrow" }, q.paused ? el("span", { class: "chip" }, "paused") : "",
           q.concurrency ? ` cap ${q.concurrency}` : "", q.rate ? ` rate ${rate(q.rate)}` : "",
           q.key_rate ? ` key rate ${rate(q.key_rate)}` : "", q.held_until ? ` held until ${when(q.held_until)}` : ""),
        el("td", {}, button(q.paused ? "Resume" : "Pause",
            async () => { await api("PATCH", `queues/${encodeURIComponent(q.name)}`, { paused: !q.paused }); route(); },
            { "aria-label": `${q.paused ? "Resume" : "Pause"} ${q.name}` }))));
    const srows = schedules.map((s) => el("tr", {},
        el("th", { scope: "row" }, s.name), el("td", {}, s.cron), el("td", {}, s.timezone),
        el("td", {}, s.job.kind), el("td", {}, s.paused ? "paused" : when(s.next_run_at))));
    show(el("h1", {}, "Queues"),
        el("div", { class: "scroll" }, el("table", { id: "queues" },
            el("thead", {}, el("tr", {}, el("th", {}, "queue"), ...STATES.map((s) => el("th", { class: "num" }, s)),
                el("th", { class: "num" }, "oldest due"), el("th", { class: "hide-narrow" }, "settings"), el("th", {}, ""))),
            el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 11, class: "muted" }, "No queue has jobs yet."))))),
        el("h2", {}, "Schedules"),
        srows.length ? el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {},
            el("th", {}, "name"), el("th", {}, "cron"), el("th", {}, "zone"), el("th", {}, "kind"), el("th", {}, "next run"))),
            el("tbody", {}, srows))) : el("p", { class: "muted" }, "No schedules."));
}

// ---- jobs: filters, keyset pages, bulk ----

async function jobs(params) {
    const q = new URLSearchParams();
    for (const k of ["state", "kind", "queue", "cursor"]) if (params.get(k)) q.set(k, params.get(k));
    q.set("limit", "50");
    const page = await api("GET", `jobs?${q}`);
    const field = (name, options) => options
        ? el("select", { name, "aria-label": name }, el("option", { value: "" }, `any ${name}`),
            ...options.map((o) => el("option", { value: o, selected: params.get(name) === o }, o)))
        : el("input", { name, placeholder: name, "aria-label": name, value: params.get(name) || "" });
    const form = el("form", { class: "filters", onsubmit: (ev) => {
        ev.preventDefault();
        const f = new URLSearchParams();
        for (const [k, v] of new FormData(form)) if (v) f.set(k, v);
        location.hash = `#/jobs?${f}`;
    } }, field("state", STATES), field("kind"), field("queue"), el("button", { type: "submit" }, "Filter"));
    const filter = {};
    for (const k of ["state", "kind", "queue"]) if (params.get(k)) filter[k] = params.get(k);
    const bulk = (what) => button(`${what} all matching`, async () => {
        let cursor = null, n = 0;
        do {
            const r = await api("POST", `jobs/${what.toLowerCase()}`, { ...filter, limit: 1000, cursor });
            n += r.count;
            cursor = r.next_cursor;
        } while (cursor);
        alert(`${what}: ${n} jobs changed`);
        route();
    });
    const rows = page.jobs.map((j) => el("tr", {},
        el("td", {}, el("a", { href: `#/job/${j.id}` }, j.id)), el("td", {}, j.kind), el("td", {}, j.queue),
        el("td", { class: `s-${j.state}` }, j.state), el("td", { class: "num" }, j.attempt),
        el("td", { class: "hide-narrow" }, when(j.created_at))));
    const next = new URLSearchParams(q);
    next.delete("limit");
    if (page.next_cursor) next.set("cursor", page.next_cursor);
    show(el("h1", {}, "Jobs"), form, el("p", {}, bulk("Retry"), " ", bulk("Cancel")),
        el("div", { class: "scroll" }, el("table", { id: "jobs" }, el("thead", {}, el("tr", {},
            el("th", {}, "id"), el("th", {}, "kind"), el("th", {}, "queue"), el("th", {}, "state"),
            el("th", { class: "num" }, "attempt"), el("th", { class: "hide-narrow" }, "created"))),
            el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No jobs match."))))),
        page.next_cursor ? el("p", {}, el("a", { href: `#/jobs?${next}` }, "Older jobs →")) : null);
}

// ---- one job ----

async function job(id) {
    const j = await api("GET", `jobs/${encodeURIComponent(id)}`);
    const dl = el("dl", {});
    for (const k of ["id", "kind", "queue", "state", "attempt", "max_attempts", "priority", "created_at",
                     "run_at", "attempted_at", "finished_at", "unique_key", "rate_key", "schedule",
                     "scheduled_for", "callback_url"]) {
        if (j[k] === undefined || j[k] === null) continue;
        dl.append(el("dt", {}, k), el("dd", { class: k === "state" ? `s-${j[k]}` : undefined },
            k.endsWith("_at") || k === "scheduled_for" ? when(j[k]) : j[k]));
    }
    const curl = `curl -s ${location.origin}/v1/jobs/${j.id}${sessionStorage.getItem(TOKEN) ? " -H 'Authorization: Bearer …'" : ""}`;
    let message = null;
    if (j.kind === "mail.send") {
        const m = await api("GET", `messages/${encodeURIComponent(id)}`);
        message = [el("h2", {}, "Recipients"), el("div", { class: "scroll" }, el("table", { id: "recipients" },
            el("thead", {}, el("tr", {}, el("th", {}, "address"), el("th", {}, "state"), el("th", {}, "code"),
                el("th", {}, "status"), el("th", {}, "reply"))),
            el("tbody", {}, (m.recipients || []).map((r) => el("tr", {},
                el("td", {}, r.address), el("td", { class: `r-${r.state}` }, r.state), el("td", {}, r.code ?? ""),
                el("td", {}, r.enhanced ?? ""), el("td", {}, r.reply ?? ""))))))];
    }
    show(el("h1", {}, `${j.kind} `, el("span", { class: `chip s-${j.state}` }, j.state)),
        el("p", {}, button("Retry", async () => { await api("POST", `jobs/${j.id}/retry`); route(); }), " ",
            button("Cancel", async () => { await api("POST", `jobs/${j.id}/cancel`); route(); }), " ",
            button("Copy as curl", () => navigator.clipboard.writeText(curl))),
        dl, message,
        el("h2", {}, "Payload"), el("pre", { id: "payload" }, JSON.stringify(j.payload ?? null, null, 2)),
        j.result !== undefined && j.result !== null ? [el("h2", {}, "Result"), el("pre", {}, JSON.stringify(j.result, null, 2))] : null,
        j.errors && j.errors.length ? [el("h2", {}, "Attempts that failed"), el("table", {}, el("tbody", {},
            j.errors.map((e) => el("tr", {}, el("td", { class: "num" }, e.attempt), el("td", {}, when(e.at)),
                el("td", {}, e.error)))))] : null);
}

// ---- schedules ----

async function schedulesView() {
    const { schedules } = await api("GET", "schedules");
    const act = (s, what) => button(what, async () => {
        if (what === "Delete") await api("DELETE", `schedules/${encodeURIComponent(s.name)}`);
        else await api("POST", `schedules/${encodeURIComponent(s.name)}/${what.toLowerCase()}`);
        route();
    }, { "aria-label": `${what} ${s.name}` });
    show(el("h1", {}, "Schedules"), schedules.length ? el("div", { class: "scroll" }, el("table", { id: "schedules" },
        el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "cron"), el("th", {}, "zone"), el("th", {}, "job"),
            el("th", {}, "next run"), el("th", {}, "last run"), el("th", {}, ""))),
        el("tbody", {}, schedules.map((s) => el("tr", {},
            el("th", { scope: "row" }, s.name), el("td", {}, s.cron), el("td", {}, s.timezone),
            el("td", {}, `${s.job.kind} on ${s.job.queue}`), el("td", {}, s.paused ? "paused" : when(s.next_run_at)),
            el("td", {}, s.last_job_id ? el("a", { href: `#/job/${s.last_job_id}` }, when(s.last_run_at)) : "—"),
            el("td", {}, act(s, s.paused ? "Resume" : "Pause"), " ", act(s, "Delete")))))))
        : el("p", { class: "muted" }, "No schedules. Create one with PUT /v1/schedules/NAME or outbox schedule set."));
}

// ---- live: /v1/events, read with fetch so that the bearer header goes too ----

let lastEventId = null, refreshTimer = null;

function refreshSoon() {
    if (refreshTimer || !/^#\/?$/.test(location.hash || "#/")) return; // the overview's counts
    refreshTimer = setTimeout(() => { refreshTimer = null; route(); }, 500);
}

async function live() {
    const status = document.getElementById("live");
    for (let backoff = 1000;; backoff = Math.min(backoff * 2, 10000)) {
        try {
            const h = headers({ Accept: "text/event-stream" });
            if (lastEventId) h["Last-Event-ID"] = lastEventId;
            const res = await fetch("../v1/events", { headers: h });
            if (!res.ok) throw new Error(`HTTP ${res.status}`);
            status.textContent = "live";
            backoff = 1000;
            refreshSoon(); // whatever changed while the stream was not there
            const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
            let buf = "";
            for (;;) {
                const { value, done } = await reader.read();
                if (done) break;
                buf += value;
                let i;
                while ((i = buf.indexOf("\n\n")) >= 0) {
                    const block = buf.slice(0, i);
                    buf = buf.slice(i + 2);
                    for (const line of block.split("\n"))
                        if (line.startsWith("id: ")) lastEventId = line.slice(4);
                    if (/^data: /m.test(block)) refreshSoon();
                }
            }
        } catch (e) {
            status.textContent = "reconnecting…";
        }
        await new Promise((ok) => setTimeout(ok, backoff));
    }
}

// ---- routing ----

async function route() {
    const [path, query] = (location.hash.slice(1) || "/").split("?");
    const params = new URLSearchParams(query || "");
    document.getElementById("signout").hidden = !sessionStorage.getItem(TOKEN);
    try {
        if (path.startsWith("/job/")) await job(decodeURIComponent(path.slice(5)));
        else if (path === "/jobs") await jobs(params);
        else if (path === "/schedules") await schedulesView();
        else await overview();
    } catch (e) {
        fail(e);
    }
}

document.getElementById("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    route();
});
window.addEventListener("hashchange", route);
route();
live();
