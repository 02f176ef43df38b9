// app.js - the outbox dashboard's frame: routing (#/, #/jobs, #/job/ID,
// #/schedules, #/new), signing in, the schedules view, and the live
// stream. Plain JavaScript modules, no build step, served by outboxd from
// assets embedded in its binary (ui/, embedded by cmake/embed_ui.cmake).
// It uses only the public HTTP API (/v1/...), so everything it shows or
// does can be scripted too.
//
// Safety: every value from the API is put on the page as text
// (textContent, attribute values: lib.js's el), never as HTML; the page's
// Content-Security-Policy forbids inline scripts besides. Auth: with
// tokens, the sign-in form keeps the token in sessionStorage and sends it
// as a bearer header (never a cookie: no CSRF).
//
// Live: /v1/events is read with fetch and a stream reader (EventSource
// cannot send the bearer header), resumed with Last-Event-ID. Each view
// gets a context: it subscribes to the events it cares about and asks for
// a refresh; a refresh waits while the operator is typing in a form.

import { api, button, el, main, setUnauthorized, show, table, when, enc, TOKEN } from "./lib.js";
import { overview } from "./overview.js";
import { jobs } from "./jobs.js";
import { job } from "./job.js";
import { forms } from "./forms.js";

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
setUnauthorized(signIn);

// ---- schedules ----

async function schedules(ctx) {
    const { schedules: list } = await api("GET", "schedules");
    const act = (s, what) => button(what, async () => {
        if (what === "Delete") await api("DELETE", `schedules/${enc(s.name)}`);
        else await api("POST", `schedules/${enc(s.name)}/${what.toLowerCase()}`);
        ctx.refresh();
    }, { "aria-label": `${what} ${s.name}` });
    ctx.show(el("h1", {}, "Schedules"), table("schedules", ["name", "cron", "zone", "job", "next runs", "last run", ""],
        list.map((s) => el("tr", { "data-schedule": s.name },
            el("th", { scope: "row" }, s.name), el("td", { class: "mono" }, s.cron), el("td", {}, s.timezone),
            el("td", {}, `${s.job.kind} on ${s.job.queue}`),
            el("td", {}, s.paused ? "paused" : (s.next_runs || [s.next_run_at]).slice(0, 3).map((t) => el("div", {}, when(t)))),
            el("td", {}, s.last_job_id ? el("a", { href: `#/job/${s.last_job_id}` }, when(s.last_run_at)) : "—"),
            el("td", { class: "actions" }, act(s, s.paused ? "Resume" : "Pause"), " ", act(s, "Delete")))),
        "No schedules. Create one with PUT /v1/schedules/NAME or outbox schedule set."));
    ctx.onEvent((ev) => { if (ev.schedule) ctx.refreshSoon(); });
}

// ---- routing, and each view's context ----

// `early`: the events since the current route began, replayed to a view's
// listener when it subscribes (a view subscribes after its first fetch, and
// what happened during that fetch must not be lost).
let generation = 0, listeners = [], timers = [], early = [];

function typing() {
    const a = document.activeElement;
    return a && main.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.type !== "checkbox";
}

function context(gen) {
    let pending = null;
    const live = () => gen === generation;
    const ctx = {
        refresh: () => { if (live()) route(true); },
        refreshSoon: () => {
            if (pending || !live()) return;
            pending = setTimeout(function again() {
                if (!live()) return;
                if (typing()) { pending = setTimeout(again, 1000); return; }
                pending = null;
                route(true);
            }, 500);
        },
        onEvent: (fn) => {
            if (!live()) return;
            listeners.push(fn);
            for (const ev of early) fn(ev);
        },
        // A view's page, unless another route has begun since it did.
        show: (...nodes) => { if (live()) show(...nodes); },
        every: (ms) => timers.push(setInterval(() => ctx.refreshSoon(), ms)),
    };
    return ctx;
}

async function route(again = false) {
    const gen = ++generation;
    listeners = [];
    early = [];
    timers.forEach(clearInterval);
    timers = [];
    const [path, query] = (location.hash.slice(1) || "/").split("?");
    const params = new URLSearchParams(query || "");
    document.getElementById("signout").hidden = !sessionStorage.getItem(TOKEN);
    for (const a of document.querySelectorAll("header nav a"))
        a.toggleAttribute("aria-current", a.getAttribute("href") === `#${path === "/" ? "/" : path.split("/").slice(0, 2).join("/")}`);
    const ctx = context(gen);
    try {
        if (path.startsWith("/job/")) await job(ctx, decodeURIComponent(path.slice(5)));
        else if (path === "/jobs") await jobs(ctx, params);
        else if (path === "/schedules") await schedules(ctx);
        else if (path === "/new") await forms(ctx);
        else await overview(ctx);
        if (!again) main.focus({ preventScroll: true });
    } catch (e) {
        if (e.status !== 401 && gen === generation)
            show(el("p", { class: "error", role: "alert" }, `Error: ${e.message}`));
    }
}

// ---- live ----

let lastEventId = null;

function dispatch(block) {
    let data = null;
    for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) lastEventId = line.slice(4);
        else if (line.startsWith("data: ")) data = line.slice(6);
    }
    let ev = {};
    try { ev = data ? JSON.parse(data) : {}; } catch (e) { ev = {}; }
    if (early.length < 1000) early.push(ev);
    for (const fn of listeners) fn(ev);
}

async function live() {
    const status = document.getElementById("live");
    for (let backoff = 1000;; backoff = Math.min(backoff * 2, 10000)) {
        try {
            const h = { Accept: "text/event-stream" };
            const t = sessionStorage.getItem(TOKEN);
            if (t) h.Authorization = `Bearer ${t}`;
            if (lastEventId) h["Last-Event-ID"] = lastEventId;
            const res = await fetch("../v1/events", { headers: h });
            if (!res.ok) throw new Error(`HTTP ${res.status}`);
            status.textContent = "live";
            backoff = 1000;
            dispatch(""); // whatever changed while the stream was not there
            const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
            let buf = "";
            for (;;) {
                const { value, done } = await reader.read();
                if (done) break;
                buf += value;
                let i;
                while ((i = buf.indexOf("\n\n")) >= 0) {
                    dispatch(buf.slice(0, i));
                    buf = buf.slice(i + 2);
                }
            }
        } catch (e) {
            status.textContent = "reconnecting…";
        }
        status.textContent = "reconnecting…";
        await new Promise((ok) => setTimeout(ok, backoff));
    }
}

document.getElementById("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    route();
});
window.addEventListener("hashchange", () => route());
route();
live();
