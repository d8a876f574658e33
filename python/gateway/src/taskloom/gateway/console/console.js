// Taskloom's web console: hash-routed views over the gateway's REST and SSE API. Every
// request carries the user's API key (kept in localStorage); SSE is read with fetch, since
// EventSource cannot send an Authorization header. Text from the API only ever becomes DOM
// text (never HTML), so a task's input or output cannot inject markup.
"use strict";

const KEY_STORE = "taskloom.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
const TASK_STATUSES = ["queued", "running", ...TERMINAL];
const WORKFLOW_STATUSES = ["running", "succeeded", "failed", "cancelled"];
const view = document.getElementById("view");
let leaving = new AbortController(); // aborted when the view changes: ends its streams

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function statusBadge(status, id) {
  return el("span", { class: `status status-${status}`, id }, status || "unknown");
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function headers(extra = {}) {
  const key = localStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

// A problem+json answer shown to the user: its title, detail and the fields it names.
function showProblem(problem) {
  const box = document.getElementById("problem");
  if (!problem) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const fields = (problem.errors || []).map((e) => `${e.field || e.name || ""}: ${e.message || e.reason || ""}`);
  box.textContent = [`${problem.status || ""} ${problem.title || "Error"}`, problem.detail, ...fields]
    .filter(Boolean).join(" — ");
  box.hidden = false;
}

// A call of the current view: once the view changes, its answer is dropped (an abort),
// so a slow answer cannot draw into the next view.
async function api(path, options = {}) {
  const signal = leaving.signal;
  const response = await fetch(path, { ...options, headers: headers(options.headers), signal });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  signal.throwIfAborted();
  if (!response.ok) {
    showProblem(body || { status: response.status, title: response.statusText });
    throw new Error(`${path}: ${response.status}`);
  }
  return body;
}

// Reads an SSE stream with fetch, calling onEvent(name, data) per event; on a dropped
// connection it reconnects with Last-Event-ID until the `done` event or the view changes.
async function streamEvents(path, onEvent) {
  const signal = leaving.signal;
  let lastId = "";
  let finished = false;
  while (!finished && !signal.aborted) {
    try {
      const extra = lastId ? { "Last-Event-ID": lastId } : {};
      const response = await fetch(path, { headers: headers(extra), signal });
      if (!response.ok) {
        showProblem(await response.json().catch(() => ({ status: response.status })));
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!frame) continue;
          if (frame.id) lastId = frame.id;
          onEvent(frame.event, frame.data);
          if (frame.event === "done" || frame.event === "error") finished = true;
        }
      }
      if (!finished) await new Promise((resolve) => setTimeout(resolve, 1000));
    } catch (err) {
      if (signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function parseFrame(text) {
  const frame = { event: "message", id: "", data: [] };
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue; // a comment (the server's keep-alive ping)
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") frame.event = value;
    else if (field === "id") frame.id = value;
    else if (field === "data") frame.data.push(value);
  }
  if (!frame.data.length) return null;
  return { ...frame, data: JSON.parse(frame.data.join("\n")) };
}

function select(id, options, current) {
  return el("select", { id }, el("option", { value: "" }, "any"),
    options.map((o) => el("option", o === current ? { value: o, selected: "" } : { value: o }, o)));
}

function queryOf(hash) {
  return new URLSearchParams(hash.split("?")[1] || "");
}

// Views.

async function tasksView(params) {
  const filters = el("form", { class: "filters", id: "task-filters" },
    el("label", {}, "Status ", select("filter-status", TASK_STATUSES, params.get("status"))),
    el("label", {}, "Agent ", el("input", { id: "filter-agent", value: params.get("agent") || "" })),
    el("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [name, id] of [["status", "filter-status"], ["agent", "filter-agent"]]) {
      const value = document.getElementById(id).value;
      if (value) q.set(name, value);
    }
    location.hash = `#/tasks?${q}`;
  });
  view.replaceChildren(el("h2", {}, "Tasks"), filters);
  const list = await api(`/v1/tasks?${params}`);
  const rows = list.tasks.map((t) => el("tr", { "data-task-id": t.id },
    el("td", {}, el("a", { href: `#/tasks/${t.id}` }, t.id)),
    el("td", {}, t.agent), el("td", {}, statusBadge(t.status)),
    el("td", {}, t.created_at || ""), el("td", {}, t.workflow_id || "")));
  view.append(el("table", { id: "tasks-table" },
    el("tr", {}, ["id", "agent", "status", "created", "workflow"].map((h) => el("th", {}, h))), rows));
  if (list.next_page_token) {
    const next = new URLSearchParams(params);
    next.set("page_token", list.next_page_token);
    view.append(el("p", {}, el("a", { href: `#/tasks?${next}`, id: "next-page" }, "Next page")));
  }
}

function chunkNode(chunk) {
  const kind = chunk.kind || "text";
  const data = chunk.data || {};
  if (kind === "tool_call") {
    return el("div", { class: "tool-call" }, el("strong", {}, `Tool call: ${data.name || ""}`),
      el("pre", {}, pretty(data.arguments ?? data)));
  }
  if (kind === "tool_result") {
    return el("div", { class: `tool-result${data.ok === false ? " failed" : ""}` },
      el("strong", {}, `Tool result: ${data.name || ""} ${data.ok === false ? "(failed)" : ""}`),
      el("pre", {}, pretty(data.content ?? data)));
  }
  if (kind === "thought") return el("div", { class: "thought" }, chunk.text);
  if (kind === "usage") return el("div", { class: "usage" }, `Usage: ${pretty(data)}`);
  if (kind === "error") return el("div", { class: "error" }, `Error: ${chunk.text}`);
  return null; // answer text goes to the answer block
}

async function taskView(id) {
  const task = await api(`/v1/tasks/${encodeURIComponent(id)}`);
  const answer = el("pre", { id: "answer" });
  const stream = el("div", { class: "stream", id: "stream" });
  const details = el("pre", { id: "task-details" }, pretty(task));
  const cancel = el("button", { id: "cancel-task", on: { click: async () => {
    await api(`/v1/tasks/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  } } }, "Cancel");
  view.replaceChildren(el("h2", {}, "Task ", el("code", {}, id), " ", statusBadge(task.status, "task-status")),
    el("div", { class: "actions" }, cancel),
    el("h3", {}, "Live stream"), stream, el("h3", {}, "Answer"), answer,
    el("h3", {}, "Task"), details);
  let attempt = null;
  const setStatus = (status) => document.getElementById("task-status")?.replaceWith(statusBadge(status, "task-status"));
  await streamEvents(`/v1/tasks/${encodeURIComponent(id)}/events`, (name, data) => {
    if (name === "status") setStatus(data.status);
    else if (name === "chunk") {
      if (attempt !== null && data.attempt !== attempt) { // a retry starts over
        answer.textContent = "";
        stream.replaceChildren();
      }
      attempt = data.attempt;
      const node = chunkNode(data);
      if (node) stream.append(node);
      else answer.append(data.text);
    } else if (name === "done") {
      setStatus(data.status);
      details.textContent = pretty(data);
      if (!answer.textContent && data.result?.text) answer.textContent = data.result.text;
    } else if (name === "error") showProblem(data);
  });
}

async function submitView() {
  const agents = (await api("/v1/agents")).agents;
  const form = el("form", { id: "submit-form" },
    el("p", {}, el("label", {}, "Agent ", el("select", { id: "submit-agent" },
      agents.map((a) => el("option", { value: a.name }, a.name))))),
    el("p", {}, el("label", {}, "Input (text, or JSON)", el("br"),
      el("textarea", { id: "submit-input", rows: 6 }))),
    el("p", {}, el("label", {}, "Priority ", el("input", { id: "submit-priority", type: "number", min: 0, max: 9 }))),
    el("button", { type: "submit", id: "submit-task" }, "Submit task"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const raw = document.getElementById("submit-input").value;
    let input = raw;
    try { input = JSON.parse(raw); } catch { /* plain text */ }
    const body = { agent: document.getElementById("submit-agent").value, input };
    const priority = document.getElementById("submit-priority").value;
    if (priority !== "") body.priority = Number(priority);
    const task = await api("/v1/tasks", {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    location.hash = `#/tasks/${task.id}`;
  });
  view.replaceChildren(el("h2", {}, "Submit a task"), form);
}

async function workflowsView(params) {
  const filters = el("form", { class: "filters", id: "workflow-filters" },
    el("label", {}, "Status ", select("filter-wf-status", WORKFLOW_STATUSES, params.get("status"))),
    el("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const status = document.getElementById("filter-wf-status").value;
    location.hash = status ? `#/workflows?status=${status}` : "#/workflows";
  });
  const submit = el("form", { id: "workflow-form" },
    el("p", {}, el("label", {}, "Workflow (JSON or YAML)", el("br"),
      el("textarea", { id: "workflow-spec", rows: 8 }))),
    el("button", { type: "submit", id: "submit-workflow" }, "Run workflow"));
  submit.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = document.getElementById("workflow-spec").value;
    const json = text.trim().startsWith("{");
    const workflow = await api("/v1/workflows", {
      method: "POST", body: text, headers: { "Content-Type": json ? "application/json" : "application/yaml" },
    });
    location.hash = `#/workflows/${workflow.id}`;
  });
  view.replaceChildren(el("h2", {}, "Workflows"), filters);
  const list = await api(`/v1/workflows?${params}`);
  view.append(el("table", { id: "workflows-table" },
    el("tr", {}, ["id", "name", "mode", "status", "steps"].map((h) => el("th", {}, h))),
    list.workflows.map((w) => el("tr", { "data-workflow-id": w.id },
      el("td", {}, el("a", { href: `#/workflows/${w.id}` }, w.id)), el("td", {}, w.spec.name),
      el("td", {}, w.spec.mode || ""), el("td", {}, statusBadge(w.status)), el("td", {}, w.steps.length)))));
  if (list.next_page_token) {
    const next = new URLSearchParams(params);
    next.set("page_token", list.next_page_token);
    view.append(el("p", {}, el("a", { href: `#/workflows?${next}`, id: "next-page" }, "Next page")));
  }
  view.append(el("h3", {}, "Run a workflow"), submit);
}

// The DAG's columns: each step one column right of the last step it depends on
// (sequential: one step a column; parallel: all in the first).
function levels(spec) {
  const depth = {};
  spec.steps.forEach((step, i) => {
    let after = step.depends_on || [];
    if (spec.mode === "sequential" && i > 0) after = [spec.steps[i - 1].id];
    depth[step.id] = after.length ? Math.max(...after.map((d) => (depth[d] ?? 0) + 1)) : 0;
  });
  const columns = [];
  for (const step of spec.steps) (columns[depth[step.id]] ||= []).push(step);
  return columns;
}

async function workflowView(id) {
  const workflow = await api(`/v1/workflows/${encodeURIComponent(id)}`);
  const states = Object.fromEntries(workflow.steps.map((s) => [s.step_id, s]));
  const stepBox = (step) => {
    const state = states[step.id] || {};
    const status = state.status || "pending";
    const tasks = (state.task_ids || []).map((t) => el("a", { href: `#/tasks/${t}` }, t));
    return el("div", { class: `step status-${status}`, id: `step-${step.id}`, "data-status": status },
      el("strong", {}, step.id), el("small", {}, step.agent),
      el("small", {}, step.depends_on?.length ? `after ${step.depends_on.join(", ")}` : ""),
      statusBadge(status), el("small", {}, tasks));
  };
  const dag = el("div", { class: "dag", id: "dag" });
  const draw = () => dag.replaceChildren(...levels(workflow.spec).map((column) =>
    el("div", { class: "dag-level" }, column.map(stepBox))));
  draw();
  view.replaceChildren(el("h2", {}, "Workflow ", el("code", {}, id), " ",
    statusBadge(workflow.status, "workflow-status")),
    el("div", { class: "actions" }, el("button", { id: "cancel-workflow", on: { click: () =>
      api(`/v1/workflows/${encodeURIComponent(id)}/cancel`, { method: "POST" }) } }, "Cancel")),
    el("p", {}, `${workflow.spec.mode || "sequential"} · ${workflow.spec.name || ""}`), dag);
  const setStatus = (status) => document.getElementById("workflow-status")?.replaceWith(statusBadge(status, "workflow-status"));
  await streamEvents(`/v1/workflows/${encodeURIComponent(id)}/events`, (name, data) => {
    if (name === "status") setStatus(data.status);
    else if (name === "step") {
      const state = (states[data.step_id] ||= { step_id: data.step_id, task_ids: [] });
      if (data.event === "status") state.status = data.data.status;
      else if (data.event === "done") {
        state.status = data.data.status;
        if (!state.task_ids.includes(data.data.id)) state.task_ids.push(data.data.id);
      }
      draw();
    } else if (name === "done") {
      for (const s of data.steps) states[s.step_id] = s;
      draw();
      setStatus(data.status);
    } else if (name === "error") showProblem(data);
  });
}

async function agentsView() {
  const agents = (await api("/v1/agents")).agents;
  view.replaceChildren(el("h2", {}, "Agents"), el("table", { id: "agents-table" },
    el("tr", {}, ["name", "provider", "model", "tools", "limits", "description"].map((h) => el("th", {}, h))),
    agents.map((a) => el("tr", { "data-agent": a.name }, el("td", {}, a.name), el("td", {}, a.provider),
      el("td", {}, a.model), el("td", {}, a.tools.join(", ")),
      el("td", {}, Object.entries(a.limits).filter(([, v]) => v != null).map(([k, v]) => `${k} ${v}`).join(", ")),
      el("td", {}, a.description)))));
}

async function usageView(params) {
  const groupBy = params.get("group_by") || "tenant";
  const picker = el("form", { class: "filters", id: "usage-form" },
    el("label", {}, "Group by ", el("select", { id: "usage-group" }, ["tenant", "agent", "model"].map((g) =>
      el("option", g === groupBy ? { value: g, selected: "" } : { value: g }, g)))),
    el("button", { type: "submit" }, "Show"));
  picker.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#/usage?group_by=${document.getElementById("usage-group").value}`;
  });
  const report = await api(`/v1/usage?group_by=${encodeURIComponent(groupBy)}`);
  const columns = ["tenant", "agent", "endpoint", "model", "calls", "prompt_tokens", "completion_tokens", "cost_usd"]
    .filter((c) => report.rows.some((r) => r[c] !== null && r[c] !== undefined));
  view.replaceChildren(el("h2", {}, "Usage"), picker, el("table", { id: "usage-table" },
    el("tr", {}, columns.map((c) => el("th", {}, c))),
    report.rows.map((r) => el("tr", {}, columns.map((c) => el("td", {}, r[c]))))));
}

const ROUTES = [
  [/^#\/tasks\/([^?]+)$/, (m) => taskView(decodeURIComponent(m[1]))],
  [/^#\/tasks(\?.*)?$/, (m, q) => tasksView(q)],
  [/^#\/submit$/, () => submitView()],
  [/^#\/workflows\/([^?]+)$/, (m) => workflowView(decodeURIComponent(m[1]))],
  [/^#\/workflows(\?.*)?$/, (m, q) => workflowsView(q)],
  [/^#\/agents$/, () => agentsView()],
  [/^#\/usage(\?.*)?$/, (m, q) => usageView(q)],
];

async function route() {
  leaving.abort();
  leaving = new AbortController();
  showProblem(null);
  const hash = location.hash || "#/tasks";
  for (const [pattern, render] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    try {
      await render(match, queryOf(hash));
    } catch (err) {
      console.warn(err); // the problem is shown already
    }
    return;
  }
  location.hash = "#/tasks";
}

document.getElementById("api-key").value = localStorage.getItem(KEY_STORE) || "";
document.getElementById("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = document.getElementById("api-key").value.trim();
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
  route();
});
window.addEventListener("hashchange", route);
route();
