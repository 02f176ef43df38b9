// jobs.js - the list of jobs: filters (state, kind, queue, time range) and
// search (an id, a unique key, a recipient, a Message-ID), newest first in
// keyset pages (GET /v1/jobs: fast at any size), and the operator's bulk
// tools: retry or cancel the jobs selected, or every job the filter
// matches (POST /v1/jobs/retry|cancel, a page of 1,000 a call).

import { api, button, el, note, table, when, STATES } from "./lib.js";

const FILTERS = ["state", "kind", "queue", "search", "created_after", "created_before"];
const selected = new Set(); // ids ticked, kept across live refreshes of one list
let selectedFor = "", said = ""; // ... and what the last bulk action said

// datetime-local (the browser's zone) <-> RFC 3339
const toIso = (v) => (v ? new Date(v).toISOString() : "");
function toLocal(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function filterForm(params) {
    const input = (name, label, type = "text") => el("input", {
        name, type, placeholder: label, "aria-label": label,
        value: type === "datetime-local" ? toLocal(params.get(name)) : params.get(name) || "" });
    const form = el("form", { class: "filters", role: "search", onsubmit: (ev) => {
        ev.preventDefault();
        const f = new URLSearchParams();
        for (const [k, v] of new FormData(form)) {
            if (v) f.set(k, k.startsWith("created_") ? toIso(v) : v);
        }
        location.hash = `#/jobs?${f}`;
    } },
    el("input", { name: "search", type: "search", id: "search", class: "wide", value: params.get("search") || "",
                  placeholder: "id, unique key, recipient or Message-ID", "aria-label": "Search" }),
    el("select", { name: "state", "aria-label": "state" }, el("option", { value: "" }, "any state"),
        STATES.map((o) => el("option", { value: o, selected: params.get("state") === o }, o))),
    input("kind", "kind"), input("queue", "queue"),
    el("label", {}, "from ", input("created_after", "Created after", "datetime-local")),
    el("label", {}, "to ", input("created_before", "Created before", "datetime-local")),
    el("button", { type: "submit" }, "Filter"));
    return form;
}

// Retry or cancel every job the filter matches, page by page.
async function allMatching(what, filter, out) {
    let cursor = null, matched = 0, changed = 0;
    do {
        const r = await api("POST", `jobs/${what}`, { ...filter, limit: 1000, cursor });
        matched += r.matched;
        changed += r.count;
        cursor = r.next_cursor;
        note(out, `${what}: ${changed} of ${matched} changed so far…`);
    } while (cursor);
    note(out, `${what}: ${changed} of ${matched} matching jobs changed`);
    return out.textContent;
}

export async function jobs(ctx, params) {
    const q = new URLSearchParams();
    for (const k of [...FILTERS, "cursor"]) if (params.get(k)) q.set(k, params.get(k));
    q.set("limit", "50");
    const key = FILTERS.map((k) => params.get(k) || "").join("|");
    if (key !== selectedFor) {
        selected.clear();
        selectedFor = key;
        said = "";
    }
    const page = await api("GET", `jobs?${q}`);
    const filter = {};
    for (const k of FILTERS) if (params.get(k)) filter[k] = params.get(k);
    const out = el("p", { class: "note", role: "status", id: "bulk-status" }, said);
    const count = el("span", {}, String(selected.size));
    const tick = (id, on) => {
        if (on) selected.add(id); else selected.delete(id);
        count.textContent = String(selected.size);
    };
    const boxes = [];
    const rows = page.jobs.map((j) => {
        const box = el("input", { type: "checkbox", checked: selected.has(j.id), "aria-label": `Select ${j.id}`,
                                  onchange: (ev) => tick(j.id, ev.currentTarget.checked) });
        boxes.push([box, j.id]);
        return el("tr", { "data-id": j.id }, el("td", {}, box),
            el("td", {}, el("a", { href: `#/job/${j.id}`, class: "mono" }, j.id)), el("td", {}, j.kind),
            el("td", {}, j.queue), el("td", { class: `s-${j.state}` }, j.state), el("td", { class: "num" }, j.attempt),
            el("td", { class: "hide-narrow" }, when(j.created_at)));
    });
    const all = el("input", { type: "checkbox", "aria-label": "Select every job on this page", onchange: (ev) => {
        for (const [b, id] of boxes) { b.checked = ev.currentTarget.checked; tick(id, b.checked); }
    } });
    const bySelection = (what) => button(`${what[0].toUpperCase()}${what.slice(1)} selected`, async () => {
        if (!selected.size) return note(out, "Select jobs first.", true);
        const r = await api("POST", `jobs/${what}`, { ids: [...selected] });
        note(out, said = `${what}: ${r.count} of ${r.matched} selected jobs changed`);
        selected.clear();
        ctx.refresh();
    }, {}, out);
    const byFilter = (what) => button(`${what[0].toUpperCase()}${what.slice(1)} all matching`, async () => {
        said = await allMatching(what, filter, out);
        ctx.refresh();
    }, {}, out);
    const next = new URLSearchParams(q);
    next.delete("limit");
    if (page.next_cursor) next.set("cursor", page.next_cursor);
    ctx.show(el("h1", { elementtiming: "jobs" }, "Jobs"), filterForm(params),
        el("div", { class: "bulk" }, el("span", { class: "muted" }, count, " selected "),
            bySelection("retry"), bySelection("cancel"), " ", byFilter("retry"), byFilter("cancel")),
        out,
        table("jobs", [el("th", {}, all), "id", "kind", "queue", "state",
            el("th", { class: "num", scope: "col" }, "attempt"), el("th", { class: "hide-narrow", scope: "col" }, "created")],
        rows, "No jobs match."),
        el("p", {}, params.get("cursor") ? el("a", { href: `#/jobs?${new URLSearchParams(filter)}` }, "← Newest") : "",
            " ", page.next_cursor ? el("a", { href: `#/jobs?${next}` }, "Older jobs →") : ""));
    // Live: the first page follows the events; an older page stays put.
    if (!params.get("cursor")) ctx.onEvent(() => ctx.refreshSoon());
}
