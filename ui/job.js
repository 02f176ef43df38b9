// job.js - one job in full: what it is, its timeline (built from what the
// store keeps: made, each attempt's start and end, its end), every attempt
// with its error and duration, its payload and result, the callbacks that
// told its end (jobs with the search term callback:ID); for a message, each
// recipient's SMTP outcome and the message itself: headers, text, the html
// in a sandboxed frame (no scripts, no same origin, under this page's
// policy: no remote images either), attachments, the .eml to download.

import { api, button, download, el, enc, secs, table, when, TOKEN } from "./lib.js";

function timeline(j) {
    const t = [[j.created_at, j.run_at && j.run_at > j.created_at ? `created, due ${when(j.run_at)}` : "created"]];
    const failed = new Set();
    for (const e of j.errors || []) {
        failed.add(e.attempt);
        if (e.started_at) t.push([e.started_at, `attempt ${e.attempt} started`]);
        t.push([e.at, `attempt ${e.attempt} ended: ${e.error}`]);
    }
    if (j.attempted_at && !failed.has(j.attempt)) t.push([j.attempted_at, `attempt ${j.attempt} started`]);
    if (j.finished_at) t.push([j.finished_at, j.state]);
    else if (j.state === "retryable" || j.state === "scheduled") t.push([j.run_at, `${j.state}: next attempt due`]);
    t.sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
    return el("ol", { class: "timeline", id: "timeline" }, t.map(([at, what]) =>
        el("li", {}, el("time", { datetime: at }, when(at)), " ", what)));
}

function attempts(j) {
    const rows = (j.errors || []).map((e) => el("tr", {}, el("td", { class: "num" }, e.attempt),
        el("td", {}, when(e.started_at)), el("td", {}, when(e.at)), el("td", { class: "num" }, secs(e.duration)),
        el("td", {}, e.error)));
    if (j.attempted_at && !(j.errors || []).some((e) => e.attempt === j.attempt)) {
        const end = j.finished_at || null;
        rows.push(el("tr", {}, el("td", { class: "num" }, j.attempt), el("td", {}, when(j.attempted_at)),
            el("td", {}, end ? when(end) : "running"),
            el("td", { class: "num" }, end ? secs((Date.parse(end) - Date.parse(j.attempted_at)) / 1000) : "—"),
            el("td", { class: `s-${j.state}` }, end ? j.state : "")));
    }
    return table("attempts", [el("th", { class: "num", scope: "col" }, "#"), "started", "ended",
        el("th", { class: "num", scope: "col" }, "took"), "outcome"], rows, "Not attempted yet.");
}

function recipients(m) {
    return table("recipients", ["address", "type", "state", "code", "status", "reply"], (m.recipients || []).map((r) =>
        el("tr", { "data-address": r.address }, el("td", { "data-field": "address" }, r.address), el("td", {}, r.type),
            el("td", { class: `r-${r.state}`, "data-field": "state" }, r.state),
            el("td", { class: "num", "data-field": "code" }, r.code ?? ""),
            el("td", { "data-field": "enhanced" }, r.enhanced ?? ""), el("td", { "data-field": "reply" }, r.reply ?? ""))),
    "No recipients.");
}

function message(j, m) {
    const p = j.payload || {};
    const list = (v) => (Array.isArray(v) ? v.map((a) => (typeof a === "string" ? a : a.name ? `${a.name} <${a.address}>` : a.address)).join(", ")
        : v && typeof v === "object" ? (v.name ? `${v.name} <${v.address}>` : v.address) : v);
    const dl = el("dl", { id: "message-headers" });
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") dl.append(el("dt", {}, k), el("dd", {}, v)); };
    add("From", list(p.from));
    add("To", list(p.to));
    add("Cc", list(p.cc));
    add("Bcc", list(p.bcc));
    add("Reply-To", list(p.reply_to));
    add("Subject", p.subject);
    add("Message-ID", m.message_id || p.message_id);
    for (const [k, v] of Object.entries(p.headers || {})) add(k, v);
    const atts = p.attachments || [];
    return [el("h2", {}, "Recipients"), recipients(m),
        el("h2", {}, "Message ", button("Download .eml", () => download(`messages/${j.id}/raw`, `${j.id}.eml`))),
        dl,
        p.text !== undefined ? [el("h3", {}, "Text"), el("pre", { id: "message-text" }, p.text)] : null,
        p.html !== undefined ? [el("h3", {}, "HTML"),
            // sandbox="": no scripts, no forms, no same origin, no top navigation
            el("iframe", { id: "message-html", sandbox: "", referrerpolicy: "no-referrer", title: "The message's HTML",
                           srcdoc: p.html })] : null,
        atts.length ? [el("h3", {}, "Attachments"), table("attachments", ["file", "type", el("th", { class: "num" }, "bytes")],
            atts.map((a) => el("tr", {}, el("td", {}, a.filename), el("td", {}, a.content_type),
                el("td", { class: "num" }, a.size ?? ""))), "")] : null];
}

async function callbacks(id) {
    const { jobs } = await api("GET", `jobs?search=${enc(`callback:${id}`)}&kind=outbox.callback&limit=20`);
    if (!jobs.length) return null;
    return [el("h2", {}, "Callbacks"), table("callbacks", ["job", "state", el("th", { class: "num" }, "attempts"), "created"],
        jobs.map((c) => el("tr", {}, el("td", {}, el("a", { href: `#/job/${c.id}`, class: "mono" }, c.id)),
            el("td", { class: `s-${c.state}` }, c.state), el("td", { class: "num" }, c.attempt), el("td", {}, when(c.created_at)))), "")];
}

const FIELDS = ["id", "kind", "queue", "state", "attempt", "max_attempts", "priority", "created_at", "run_at",
    "attempted_at", "finished_at", "unique_key", "rate_key", "schedule", "scheduled_for", "callback_url"];

export async function job(ctx, id) {
    const isMessage = (j) => j.kind === "mail.send";
    let j = await api("GET", `jobs/${enc(id)}`);
    const [m, cbs] = await Promise.all([isMessage(j) ? api("GET", `messages/${enc(id)}`) : null, callbacks(j.id)]);
    const dl = el("dl", { id: "job-fields" });
    for (const k of FIELDS) {
        if (j[k] === undefined || j[k] === null) continue;
        dl.append(el("dt", {}, k), el("dd", { class: k === "state" ? `s-${j[k]}` : undefined },
            k.endsWith("_at") || k === "scheduled_for" ? when(j[k]) : j[k]));
    }
    const auth = sessionStorage.getItem(TOKEN) ? " -H \"Authorization: Bearer $OUTBOX_TOKEN\"" : "";
    const curl = `curl -s${auth} ${new URL(`../v1/${isMessage(j) ? "messages" : "jobs"}/${j.id}`, location.href)}`;
    const out = el("span", { class: "note", role: "status" });
    ctx.show(el("h1", {}, `${j.kind} `, el("span", { class: `chip s-${j.state}`, id: "job-state" }, j.state)),
        el("p", { class: "actions" },
            button("Retry", async () => { await api("POST", `jobs/${j.id}/retry`); ctx.refresh(); }, {}, out), " ",
            button("Cancel", async () => { await api("POST", `jobs/${j.id}/cancel`); ctx.refresh(); }, {}, out), " ",
            button("Copy as curl", async () => {
                await navigator.clipboard.writeText(curl);
                out.textContent = "copied";
            }, { title: curl }, out), " ", out),
        dl, m ? message(j, m) : null,
        el("h2", {}, "Timeline"), timeline(j),
        el("h2", {}, "Attempts"), attempts(j),
        el("h2", {}, "Payload"), el("pre", { id: "payload" }, JSON.stringify(j.payload ?? j.payload_base64 ?? null, null, 2)),
        j.result !== undefined && j.result !== null ? [el("h2", {}, "Result"), el("pre", { id: "result" }, JSON.stringify(j.result, null, 2))] : null,
        cbs);
    ctx.onEvent((ev) => { if (ev.id === j.id || (cbs && ev.kind === "outbox.callback")) ctx.refreshSoon(); });
}
