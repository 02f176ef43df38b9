// overview.js - the first page: the service's health and version, this
// node's last minutes (started, finished, start latency), every queue with
// its counts by state, oldest due job, settings and controls (pause,
// resume, limits), the nodes of a shared store, and the schedules.
// Counts come from the store's counters (GET /v1/queues): cheap at any
// size, so the page can refresh on every event.

import { api, button, el, enc, age, note, rate, secs, spark, table, when, STATES } from "./lib.js";

const HISTORY = 120; // seconds drawn in a queue's row

function limitsForm(q, done) {
    const out = el("span", { class: "note", role: "status" });
    const num = (name, value, label) => el("input", { type: "number", min: 1, name, value: value ?? "",
                                                     "aria-label": `${label} of ${q.name}`, class: "short" });
    const cap = num("concurrency", q.concurrency, "Concurrency");
    const limit = num("limit", q.rate && q.rate.limit, "Rate limit");
    const period = num("period", q.rate && q.rate.period, "Rate period in seconds");
    return el("form", { class: "limits", onsubmit: async (ev) => {
        ev.preventDefault();
        const body = {
            concurrency: cap.value ? Number(cap.value) : null,
            rate: limit.value ? { limit: Number(limit.value), period: Number(period.value || 1) } : null,
        };
        try {
            await api("PATCH", `queues/${enc(q.name)}`, body);
            done();
        } catch (e) { note(out, e.message, true); }
    } }, el("label", {}, "at most ", cap, " running"), " ",
        el("label", {}, "rate ", limit, " per ", period, " s"), " ",
        el("button", { type: "submit" }, "Save"), " ", out);
}

function queueRows(queues, stats, refresh) {
    return queues.flatMap((q) => {
        const h = stats.queues[q.name];
        const started = h ? h.started.slice(-HISTORY) : [];
        const edit = el("tr", { class: "edit", hidden: true },
            el("td", { colspan: STATES.length + 5 }, limitsForm(q, refresh)));
        const settings = [q.paused ? el("span", { class: "chip" }, "paused") : "",
            q.concurrency ? ` cap ${q.concurrency}` : "", q.rate ? ` rate ${rate(q.rate)}` : "",
            q.key_rate ? ` per key ${rate(q.key_rate)}` : "", q.held_until ? ` held until ${when(q.held_until)}` : ""];
        return [el("tr", { "data-queue": q.name },
            el("th", { scope: "row" }, el("a", { href: `#/jobs?queue=${enc(q.name)}` }, q.name)),
            STATES.map((s) => el("td", { class: `num s-${s}${q.counts[s] ? "" : " zero"}`, "data-state": s }, q.counts[s])),
            el("td", { class: "num" }, age(q.oldest_due_age)),
            el("td", { class: "hide-narrow" }, h ? spark(started, `${q.name}: started a second`) : "—"),
            el("td", { class: "hide-narrow" }, settings),
            el("td", { class: "actions" },
                button(q.paused ? "Resume" : "Pause", async () => {
                    await api("PATCH", `queues/${enc(q.name)}`, { paused: !q.paused });
                    refresh();
                }, { "aria-label": `${q.paused ? "Resume" : "Pause"} ${q.name}` }), " ",
                el("button", { type: "button", "aria-label": `Limits of ${q.name}`, "aria-expanded": "false",
                               onclick: (ev) => {
                                   edit.hidden = !edit.hidden;
                                   ev.currentTarget.setAttribute("aria-expanded", String(!edit.hidden));
                                   if (!edit.hidden) edit.querySelector("input").focus();
                               } }, "Limits"))), edit];
    });
}

function health(stats, nodes) {
    const t = stats.total;
    const sum = (a) => a.reduce((x, y) => x + y, 0);
    const per = (a) => (sum(a.slice(-60)) / 60).toFixed(1);
    document.getElementById("version").textContent = `outbox ${stats.version}`;
    return el("section", { class: "health", "aria-label": "Health" },
        el("div", {}, el("span", { class: stats.ready ? "chip ok" : "chip bad", id: "ready" },
            stats.ready ? "ready" : `not ready: ${stats.reason}`), " ", stats.store,
            ` · ${nodes.length} node${nodes.length === 1 ? "" : "s"}`),
        el("div", { class: "metric" }, el("span", { class: "muted" }, "started/s "), per(t.started), " ",
            spark(t.started, "started a second, last 5 minutes")),
        el("div", { class: "metric" }, el("span", { class: "muted" }, "finished/s "), per(t.finished), " ",
            spark(t.finished, "finished a second, last 5 minutes")),
        el("div", { class: "metric" }, el("span", { class: "muted" }, "start latency "),
            secs(Math.max(...t.wait_max.slice(-60), 0)), " ",
            spark(t.wait_max, "longest wait to start, last 5 minutes", "s")));
}

function nodesTable(nodes) {
    const now = Date.now();
    return table("nodes", ["node", "host", "pid", "role", "last heard", "started"], nodes.map((n) =>
        el("tr", {}, el("td", {}, n.id ? n.id.slice(0, 8) : "this process", n.self ? " (this one)" : ""),
            el("td", {}, n.host), el("td", { class: "num" }, n.pid), el("td", {}, n.leader ? "leader" : "member"),
            el("td", {}, age((now - Date.parse(n.heartbeat_at)) / 1000), " ago"),
            el("td", { class: "hide-narrow" }, when(n.started_at)))), "No node.");
}

export async function overview(ctx) {
    const [{ queues }, { schedules }, stats, { nodes }] = await Promise.all([
        api("GET", "queues"), api("GET", "schedules"), api("GET", "stats"), api("GET", "nodes")]);
    const heads = ["queue", ...STATES.map((s) => el("th", { class: "num", scope: "col" }, s)),
        el("th", { class: "num", scope: "col" }, "oldest due"),
        el("th", { class: "hide-narrow", scope: "col" }, `started/s (${HISTORY / 60} min)`),
        el("th", { class: "hide-narrow", scope: "col" }, "settings"), el("th", { scope: "col" }, "")];
    ctx.show(el("h1", { elementtiming: "overview" }, "Overview"), health(stats, nodes),
        el("h2", {}, "Queues"),
        table("queues", heads, queueRows(queues, stats, ctx.refresh), "No queue has jobs yet."),
        el("h2", {}, "Schedules"),
        table("schedule-summary", ["name", "cron", "zone", "job", "next run"], schedules.map((s) => el("tr", {},
            el("th", { scope: "row" }, el("a", { href: "#/schedules" }, s.name)), el("td", {}, s.cron),
            el("td", {}, s.timezone), el("td", {}, `${s.job.kind} on ${s.job.queue}`),
            el("td", {}, s.paused ? "paused" : when(s.next_run_at)))), "No schedules."),
        el("h2", {}, "Nodes"), nodesTable(nodes));
    ctx.onEvent(() => ctx.refreshSoon());
    ctx.every(5000); // the sparklines move on without events
}
