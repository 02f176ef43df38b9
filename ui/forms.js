// forms.js - trying things out: enqueue a job (POST /v1/jobs) or send a
// test message (POST /v1/messages) from a form; the API's answer, an error
// naming its field or the new job, shows beside it.

import { api, el, note } from "./lib.js";

function field(label, input) {
    return el("label", { class: "field" }, el("span", {}, label), input);
}

function jobForm() {
    const out = el("p", { class: "note", role: "status", id: "job-form-status" });
    const kind = el("input", { name: "kind", value: "http.request", required: true });
    const queue = el("input", { name: "queue", placeholder: "default" });
    const priority = el("input", { name: "priority", type: "number", value: "0" });
    const delay = el("input", { name: "delay", type: "number", min: 0, step: "any", placeholder: "0" });
    const payload = el("textarea", { name: "payload", rows: 6, class: "mono" });
    payload.value = JSON.stringify({ url: "https://example.com/hook", method: "POST", body: "{\"hello\":1}" }, null, 2);
    return el("form", { id: "job-form", class: "stack", onsubmit: async (ev) => {
        ev.preventDefault();
        let body;
        try {
            body = { kind: kind.value, payload: JSON.parse(payload.value || "null"), priority: Number(priority.value || 0) };
        } catch (e) { return note(out, `payload: not JSON (${e.message})`, true); }
        if (queue.value) body.queue = queue.value;
        if (delay.value) body.delay = Number(delay.value);
        try {
            const r = await api("POST", "jobs", body);
            location.hash = `#/job/${r.id}`;
        } catch (e) { note(out, e.field ? `${e.field}: ${e.message}` : e.message, true); }
    } }, el("h2", {}, "Enqueue a job"), field("kind", kind), field("queue", queue), field("priority", priority),
    field("delay (seconds)", delay), field("payload (JSON)", payload), el("button", { type: "submit" }, "Enqueue"), out);
}

function messageForm() {
    const out = el("p", { class: "note", role: "status", id: "message-form-status" });
    const from = el("input", { name: "from", type: "email", required: true, placeholder: "sender@example.com" });
    const to = el("input", { name: "to", required: true, placeholder: "someone@example.com, another@example.com" });
    const subject = el("input", { name: "subject", value: "A test from outbox" });
    const text = el("textarea", { name: "text", rows: 4 });
    text.value = "Hello from the outbox dashboard.";
    const html = el("textarea", { name: "html", rows: 4, class: "mono", placeholder: "<p>optional</p>" });
    return el("form", { id: "message-form", class: "stack", onsubmit: async (ev) => {
        ev.preventDefault();
        const body = { from: from.value, to: to.value.split(",").map((s) => s.trim()).filter(Boolean),
                       subject: subject.value, text: text.value };
        if (html.value) body.html = html.value;
        try {
            const r = await api("POST", "messages", body);
            location.hash = `#/job/${r.id}`;
        } catch (e) { note(out, e.field ? `${e.field}: ${e.message}` : e.message, true); }
    } }, el("h2", {}, "Send a test message"), field("from", from), field("to", to), field("subject", subject),
    field("text", text), field("html", html), el("button", { type: "submit" }, "Send"), out);
}

export async function forms(ctx) {
    ctx.show(el("h1", {}, "Try it"), el("p", { class: "muted" },
        "Everything here is an ordinary API call (POST /v1/jobs, POST /v1/messages): what a client would do."),
    el("div", { class: "columns" }, jobForm(), messageForm()));
}
