// lib.js - what every view of the dashboard uses: the API (fetch with the
// bearer token), building the page from text (el: never HTML), formatting,
// and the sparkline (SVG made with DOM calls: the page's policy forbids
// inline styles and scripts, so nothing here writes either).

export const main = document.getElementById("main");
export const TOKEN = "outbox.token";

// ---- the API ----

export class ApiError extends Error {
    constructor(status, body) {
        super((body && body.error && body.error.message) || `HTTP ${status}`);
        this.status = status;
        this.field = body && body.error && body.error.field;
    }
}

export function headers(extra = {}) {
    const t = sessionStorage.getItem(TOKEN);
    return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

let onUnauthorized = () => {};
export function setUnauthorized(fn) { onUnauthorized = fn; }

async function send(method, path, body, accept) {
    const h = headers(body === undefined ? {} : { "Content-Type": "application/json" });
    if (accept) h.Accept = accept;
    const res = await fetch(`../v1/${path}`, {
        method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) {
        onUnauthorized("This outboxd wants a token.");
        throw new ApiError(401, null);
    }
    return res;
}

export async function api(method, path, body) {
    const res = await send(method, path, body);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
}

// A file the API serves (a message's .eml), saved by the browser: fetched
// with the token, handed over as a blob.
export async function download(path, name) {
    const res = await send("GET", path);
    if (!res.ok) throw new ApiError(res.status, null);
    const url = URL.createObjectURL(await res.blob());
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- the page, from text only ----

const EVENTS = ["click", "submit", "change", "input"];

export function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (k.startsWith("on") && EVENTS.includes(k.slice(2))) e.addEventListener(k.slice(2), v);
        else if (k === "checked" || k === "value" || k === "srcdoc") e[k] = v;
        else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
        if (c === null || c === undefined || c === false) continue;
        e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
}

export function show(...nodes) {
    main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

// A line that says how an action went (role=status: read out, no alert()).
export function note(target, text, bad = false) {
    target.textContent = text;
    target.className = bad ? "note error" : "note";
}

// A button whose action runs once at a time; its error goes to `out` (a
// note) when given.
export function button(label, action, attrs = {}, out = null) {
    return el("button", { type: "button", ...attrs, onclick: async (ev) => {
        const b = ev.currentTarget;
        b.disabled = true;
        try { await action(); } catch (e) {
            if (e.status !== 401) {
                if (out) note(out, e.message, true);
                else alert(e.message);
            }
        } finally { b.disabled = false; }
    } }, label);
}

export function table(id, heads, rows, empty) {
    return el("div", { class: "scroll" }, el("table", { id },
        el("thead", {}, el("tr", {}, heads.map((h) => typeof h === "string"
            ? el("th", { scope: "col" }, h) : h))),
        el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: heads.length, class: "muted" }, empty)))));
}

// ---- formatting ----

export const STATES = ["scheduled", "available", "running", "retryable", "completed", "discarded", "cancelled"];
export const when = (t) => (t ? new Date(t).toLocaleString() : "—");
export const age = (s) => (s === null || s === undefined ? "—" : s < 60 ? `${s.toFixed(1)} s`
    : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
export const rate = (r) => (r ? `${r.limit}/${r.period}s` : "—");
export const secs = (s) => (s === null || s === undefined ? "—" : s < 1 ? `${Math.round(s * 1000)} ms` : age(s));
export const enc = encodeURIComponent;

// ---- sparklines ----

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
}

// A line of `values` (oldest first) in a w x h box, scaled to its own
// maximum; its label says what it shows and the latest and highest value.
export function spark(values, label, unit = "", w = 120, h = 24) {
    const max = Math.max(...values, 0);
    const last = values.length ? values[values.length - 1] : 0;
    const fmt = (v) => (unit === "s" ? secs(v) : `${Math.round(v * 10) / 10}${unit}`);
    const box = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, class: "spark", role: "img",
                             "aria-label": `${label}: now ${fmt(last)}, highest ${fmt(max)}` });
    const step = values.length > 1 ? w / (values.length - 1) : w;
    const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 1 - (max ? (v / max) * (h - 2) : 0)).toFixed(1)}`);
    box.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5 }));
    const t = svg("title", {});
    t.textContent = box.getAttribute("aria-label");
    box.append(t);
    return box;
}
