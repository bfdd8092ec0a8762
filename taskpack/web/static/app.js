// taskpack dashboard: plain modern JavaScript, no build step, no dependency.
// Views are hash routes: #/tasks, #/runs, #/runs/<id>, #/run/<task>, #/jobs, #/jobs/<id>.
// Every call goes to api/… relative to this page, with the token (when the
// server asks for one) as a bearer header; the token lives in sessionStorage
// only and is never shown again. Live updates come from api/events, read with
// fetch() so the token stays a header (EventSource cannot send one).
"use strict";

const TOKEN_KEY = "taskpack.token";
const OUTCOMES = ["ok", "error", "timeout", "invalid", "cancelled"];
const TRIGGERS = ["manual", "http", "schedule", "spawn", "job"];
const JOB_STATUSES = ["pending", "running", "succeeded", "failed", "cancelled"];
const SYMBOLS = { ok: "✓", succeeded: "✓", error: "✗", failed: "✗", timeout: "⏱", invalid: "⚠",
                  cancelled: "⊘", pending: "…", running: "▶" };

const state = { info: null, tasks: null, view: null, live: null, listeners: new Set(), turn: 0 };

class AuthError extends Error {}

// -- helpers -------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined
                                                                  && c !== false));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function badge(word) {
  const text = word || "none";
  return el("span", { class: `badge ${text}` }, `${SYMBOLS[text] || "•"} ${text}`);
}

function age(epochSeconds) {
  const delta = Date.now() / 1000 - epochSeconds;
  const seconds = Math.abs(delta);
  const span = seconds < 60 ? `${Math.round(seconds)} s`
    : seconds < 3600 ? `${Math.round(seconds / 60)} min`
    : seconds < 86400 ? `${Math.round(seconds / 3600)} h` : `${Math.round(seconds / 86400)} d`;
  return delta < -1 ? `in ${span}` : `${span} ago`;
}

function when(epochSeconds) {
  const date = new Date(epochSeconds * 1000);
  return el("time", { datetime: date.toISOString(), title: date.toISOString() },
            `${date.toLocaleString()} (${age(epochSeconds)})`);
}

function shortWhen(epochSeconds) {
  const date = new Date(epochSeconds * 1000);
  const today = date.toDateString() === new Date().toDateString();
  return el("time", { datetime: date.toISOString(), title: date.toLocaleString() },
            today ? date.toLocaleTimeString() : date.toLocaleDateString());
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 1000 ? `${value.toFixed(1)} ms` : `${(value / 1000).toFixed(2)} s`;
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function triggerKind(trigger) {
  return (trigger || "").startsWith("schedule:") ? "schedule" : trigger;
}

// -- the API ---------------------------------------------------------------------

// `path` is below api/ (the dashboard's endpoints), or, with `outside`, below
// this page (the queue's /_taskpack/jobs endpoints).
async function api(path, { method = "GET", body, signal, outside = false } = {}) {
  const headers = new Headers({ Accept: "application/json" });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (body !== undefined) headers.set("Content-Type", "application/json");
  const response = await fetch(new URL(outside ? path : `api/${path}`, document.baseURI), {
    method, headers, signal, cache: "no-store", credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.status === 401) throw new AuthError((data && data.message) || "unauthorized");
  return { status: response.status, ok: response.ok, data };
}

async function apiData(path, options = {}) {
  const { ok, status, data } = await api(path, options);
  if (!ok) throw new Error((data && data.message) || `HTTP ${status}`);
  return data;
}

// -- shell -------------------------------------------------------------------------

const main = () => document.getElementById("main");

function setLive(on, text) {
  const node = document.getElementById("live");
  node.textContent = text;
  node.classList.toggle("on", on);
}

function show(title, ...content) {
  const root = main();
  fill(root, el("h1", {}, title), content);
  document.title = `${title} · taskpack`;
}

function markNav(view) {
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  const parts = path.split("/").map(decodeURIComponent);
  const [view, arg] = [parts[0] || "tasks", parts.slice(1).join("/")];
  const turn = ++state.turn;  // a later route() makes this one stale
  state.listeners.clear();
  markNav(view === "run" ? "tasks" : view);
  try {
    if (!state.info) await start();
    if (view === "runs" && arg) await runView(arg);
    else if (view === "runs") await runsView();
    else if (view === "run") await runFormView(arg);
    else if (view === "jobs" && arg) await jobView(arg);
    else if (view === "jobs") await jobsView();
    else await tasksView();
  } catch (error) {
    if (turn !== state.turn) return;  // a newer view is on screen: not ours to replace
    if (error instanceof AuthError) signIn(error.message);
    else show("Something went wrong", el("p", { class: "problem", role: "alert" }, error.message));
  }
}

async function start() {
  state.info = await apiData("info");
  document.getElementById("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
  connectLive();
}

function signIn(message) {
  state.info = null;
  stopLive();
  setLive(false, "Not connected");
  const had = sessionStorage.getItem(TOKEN_KEY);
  sessionStorage.removeItem(TOKEN_KEY);
  const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "off",
                              required: true, "aria-describedby": "token-help token-error" });
  const form = el("form", { class: "card signin", onsubmit: (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    route();
  } },
    el("label", { for: "token" }, "Task API token"), input,
    el("p", { id: "token-help", class: "muted" },
       "The server's TASKPACK_TASKS_TOKEN. It is kept in this tab only (sessionStorage)."),
    el("p", { id: "token-error", class: "problem", role: "alert", hidden: !had },
       had ? `The server refused the token: ${message}` : ""),
    el("button", { type: "submit" }, "Sign in"));
  show("Sign in", form);
  input.focus();
}

// -- live events -----------------------------------------------------------------

function connectLive() {
  if (state.live) return;
  const controller = new AbortController();
  state.live = controller;
  let delay = 1000;
  let wasOpen = false;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        await readStream(controller.signal, () => {
          delay = 1000;
          // Back after a drop: events were missed and a fetch may have failed
          // meanwhile, so the view is drawn again (not the run form: it keeps
          // what the user typed).
          if (wasOpen && !location.hash.startsWith("#/run/")) route();
          wasOpen = true;
        });
        setLive(false, "Reconnecting…");
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof AuthError) { signIn(error.message); return; }
        setLive(false, "Disconnected, retrying…");
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();
}

function stopLive() {
  if (state.live) state.live.abort();
  state.live = null;
}

async function readStream(signal, opened) {
  const headers = new Headers({ Accept: "text/event-stream" });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(new URL("api/events", document.baseURI),
                               { headers, signal, cache: "no-store", credentials: "omit" });
  if (response.status === 401) throw new AuthError("unauthorized");
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  setLive(true, "Live");
  opened();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) deliver(event, JSON.parse(data.join("\n")));
    }
  }
}

function deliver(event, data) {
  for (const listener of state.listeners) listener(event, data);
}

// -- tasks -----------------------------------------------------------------------

function sparkline(recent) {
  const runs = [...recent].reverse();  // oldest first, left to right
  const width = 200, height = 28, gap = 2;
  const bar = runs.length ? Math.min(16, (width - gap * runs.length) / runs.length) : 0;
  const longest = Math.max(1, ...runs.map((r) => r.duration_ms || 0));
  const counts = {};
  for (const r of runs) counts[r.outcome] = (counts[r.outcome] || 0) + 1;
  const summary = runs.length
    ? `Last ${runs.length} runs: ` + Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")
    : "No runs yet";
  if (!runs.length) return el("p", { class: "muted" }, summary);
  const image = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`,
                             role: "img", "aria-label": summary });
  runs.forEach((r, i) => {
    const h = Math.max(3, Math.round((height - 2) * Math.sqrt((r.duration_ms || 0) / longest)));
    const rect = svg("rect", { x: i * (bar + gap), y: height - h, width: bar, height: h,
                               class: r.outcome });
    rect.append(svg("title", {}, `${r.outcome}, ${ms(r.duration_ms)}`));
    image.append(rect);
  });
  return [image, el("p", { class: "muted" }, summary)];
}

function optionsList(task) {
  if (task.loadError) return el("p", { class: "problem" }, task.loadError);
  const o = task.options || {};
  return el("dl", { class: "facts" },
    el("dt", {}, "Retries"), el("dd", {}, String(o.retries ?? 0)),
    el("dt", {}, "Timeout"), el("dd", {}, o.timeout ? `${o.timeout} s` : "none"),
    el("dt", {}, "Concurrency"),
    el("dd", {}, o.concurrency + (o.max_concurrency ? ` (max ${o.max_concurrency})` : "")),
    o.payload_schema ? [el("dt", {}, "Payload schema"), el("dd", {}, o.payload_schema)] : null);
}

function scheduleBlock(schedule) {
  const deployed = (schedule.deployed || []).map((d) => el("li", {},
    el("strong", {}, d.presets.join(", ")), ` (${d.platform}): `,
    d.ok ? el("code", {}, d.cron) : el("span", { class: "problem" }, `refused: ${d.error}`),
    d.warning ? el("p", { class: "warning" }, `warning: ${d.warning}`) : null));
  return el("div", { class: "schedule" },
    el("p", {}, el("code", {}, schedule.cron),
       schedule.description ? ` — ${schedule.description}` : ""),
    el("p", { class: "muted" }, `Next fire times (${schedule.timezone}):`),
    el("ul", { class: "plain mono" }, schedule.next.map((t) => el("li", {},
      el("time", { datetime: t }, t.replace("T", " ").replace(/:00([+-]\d\d:\d\d|Z)$/, " $1"))))),
    deployed.length ? [el("p", { class: "muted" }, "Deployed by preset:"),
                       el("ul", {}, deployed)] : null);
}

// The part of a task's card that new runs change (patched in place, so a
// live update never moves the reader's focus or scroll position).
function recentPart(task) {
  const last = task.lastRun;
  return el("div", { class: "recent", "data-task": task.name },
    last ? el("p", {}, badge(last.outcome), " ",
              el("a", { href: `#/runs/${last.id}` }, age(last.finished_at)),
              ` · ${ms(last.duration_ms)} · ${triggerKind(last.trigger)}`)
         : el("p", { class: "muted" }, "Never run"),
    sparkline(task.recent || []));
}

function taskCard(task, schedules) {
  return el("section", { class: "card", "aria-labelledby": `task-${task.name}` },
    el("header", {}, el("h2", { id: `task-${task.name}` }, task.name),
       el("a", { href: `#/run/${encodeURIComponent(task.name)}` }, `Run ${task.name}`)),
    task.description ? el("p", {}, task.description) : el("p", { class: "muted" }, "No description"),
    el("h3", {}, "Last run"), recentPart(task),
    el("h3", {}, "Options"), optionsList(task),
    task.schedules.length
      ? [el("h3", {}, "Schedules"),
         schedules.filter((s) => s.tasks.includes(task.name)).map(scheduleBlock)]
      : null);
}

async function tasksView() {
  const data = await apiData("tasks");
  state.tasks = data.tasks;
  show("Tasks",
       el("p", { class: "muted" }, `${data.tasks.length} tasks · time zone ${data.timezone}`),
       el("div", { class: "cards" }, data.tasks.map((t) => taskCard(t, data.schedules))));
  let timer = null;
  const listener = (event) => {
    if (event !== "run" || timer) return;
    timer = setTimeout(async () => {
      timer = null;
      if (!state.listeners.has(listener)) return;
      const fresh = await apiData("tasks");
      for (const task of fresh.tasks) {
        const old = main().querySelector(`.recent[data-task="${CSS.escape(task.name)}"]`);
        if (old) old.replaceWith(recentPart(task));
      }
    }, 1000);
  };
  state.listeners.add(listener);
}

// -- runs ------------------------------------------------------------------------

function select(name, label, values, current) {
  return el("label", { for: `filter-${name}` }, label,
    el("select", { id: `filter-${name}`, name },
       el("option", { value: "" }, "any"),
       values.map((v) => el("option", { value: v, selected: v === current }, v))));
}

function runRow(run, fresh) {
  return el("tr", { class: fresh ? "fresh" : null, "data-run": run.id },
    el("td", {}, el("a", { href: `#/runs/${run.id}` }, run.task)),
    el("td", {}, badge(run.outcome)),
    el("td", {}, triggerKind(run.trigger)),
    el("td", {}, shortWhen(run.started_at)),
    el("td", {}, ms(run.duration_ms)),
    el("td", {}, String(run.attempts)),
    el("td", { class: "mono" }, run.error || ""));
}

// The query of one page of a listing: the set filters, 50 rows, below `cursor`.
function pageQuery(filters, cursor) {
  const query = new URLSearchParams({ limit: "50" });
  for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
  if (cursor) query.set("cursor", cursor);
  return query;
}

function matches(run, filters) {
  return (!filters.task || run.task === filters.task)
    && (!filters.outcome || run.outcome === filters.outcome)
    && (!filters.trigger || triggerKind(run.trigger) === filters.trigger);
}

async function runsView() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filters = { task: params.get("task") || "", outcome: params.get("outcome") || "",
                    trigger: params.get("trigger") || "" };
  if (!state.tasks) state.tasks = (await apiData("tasks")).tasks;
  const form = el("form", { class: "filters", "aria-label": "Filter runs",
                            onchange: () => {
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
    location.hash = `#/runs${query.toString() ? "?" + query : ""}`;
  }, onsubmit: (event) => event.preventDefault() },
    select("task", "Task", state.tasks.map((t) => t.name), filters.task),
    select("outcome", "Outcome", OUTCOMES, filters.outcome),
    select("trigger", "Trigger", TRIGGERS, filters.trigger));
  const body = el("tbody", { id: "runs-body" });
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Older runs");
  const empty = el("p", { class: "muted", hidden: true }, "No runs match.");
  const table = el("div", { class: "table-wrap" }, el("table", { class: "runs" },
    el("caption", { class: "muted" }, "Runs, newest first"),
    el("thead", {}, el("tr", {}, ["Task", "Outcome", "Trigger", "Started", "Duration",
                                  "Attempts", "Error"].map((h) => el("th", { scope: "col" }, h)))),
    body));
  show("Runs", form, table, empty, el("p", {}, more));
  const seen = new Set();
  let cursor = null;
  async function load() {
    const query = pageQuery(filters, cursor);
    const page = await apiData(`runs?${query}`);
    for (const run of page.runs) {
      if (seen.has(run.id)) continue;
      seen.add(run.id);
      body.append(runRow(run, false));
    }
    cursor = page.next;
    more.hidden = !cursor;
    empty.hidden = seen.size > 0;
  }
  more.addEventListener("click", () => load().catch((e) => alert(e.message)));
  // Listen before the first page loads: a run finishing in between is
  // either in the page or delivered here (``seen`` keeps it to one row).
  state.listeners.add((event, run) => {
    if (event !== "run" || seen.has(run.id) || !matches(run, filters)) return;
    seen.add(run.id);
    body.prepend(runRow(run, true));
    empty.hidden = true;
  });
  await load();
}

function block(title, value) {
  if (value === null || value === undefined || value === "") return null;
  return [el("h3", {}, title), el("pre", {}, typeof value === "string" ? value : json(value))];
}

async function runView(id) {
  const { ok, data } = await api(`runs/${encodeURIComponent(id)}`);
  if (!ok) { show("Run", el("p", { class: "problem", role: "alert" }, data.message)); return; }
  const run = data.run;
  show(`Run of ${run.task}`,
    el("p", {}, el("a", { href: "#/runs" }, "← All runs"), " · ",
       el("a", { href: `#/run/${encodeURIComponent(run.task)}?from=${run.id}` },
          `Run ${run.task} again with this payload`)),
    el("dl", { class: "facts card" },
      el("dt", {}, "Outcome"), el("dd", {}, badge(run.outcome)),
      el("dt", {}, "Task"), el("dd", {}, run.task),
      el("dt", {}, "Trigger"), el("dd", {}, run.trigger),
      el("dt", {}, "Started"), el("dd", {}, when(run.started_at)),
      el("dt", {}, "Duration"), el("dd", {}, ms(run.duration_ms)),
      el("dt", {}, "Attempt"), el("dd", {}, String(run.attempts)),
      el("dt", {}, "Host"), el("dd", {}, run.host || "–"),
      el("dt", {}, "Run id"), el("dd", { class: "mono" }, run.id),
      run.job_id ? [el("dt", {}, "Job"),
                    el("dd", {}, el("a", { href: `#/jobs/${run.job_id}` }, run.job_id))] : null),
    block("Payload", run.payload), block("Result", run.result),
    block("Error", run.error), block("Traceback", run.traceback));
}

// -- run a task ------------------------------------------------------------------

function schemaFields(task) {
  const schema = task && task.options && task.options.json_schema;
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  return Object.entries(properties).map(([name, spec]) => ({
    name, required: required.has(name),
    type: spec.type || (spec.anyOf || []).map((s) => s.type).filter(Boolean).join(" | ") || "any",
  }));
}

function example(fields) {
  const sample = {};
  const defaults = { string: "", integer: 0, number: 0, boolean: false, array: [], object: {} };
  for (const f of fields) if (f.required) sample[f.name] = defaults[f.type] ?? null;
  return sample;
}

async function runFormView(name) {
  if (!state.tasks) state.tasks = (await apiData("tasks")).tasks;
  const task = state.tasks.find((t) => t.name === name);
  if (!task) { show("Run a task", el("p", { class: "problem" }, `No task ${name}`)); return; }
  const fields = schemaFields(task);
  let initial = example(fields);
  const from = new URLSearchParams(location.hash.split("?")[1] || "").get("from");
  if (from) {
    const earlier = await api(`runs/${encodeURIComponent(from)}`);
    if (earlier.ok && earlier.data.run.payload) initial = earlier.data.run.payload;
  }
  const editor = el("textarea", { id: "payload", name: "payload", spellcheck: "false",
                                  "aria-describedby": "payload-state" },
                    json(initial));
  const status = el("p", { id: "payload-state", "aria-live": "polite" });
  const button = el("button", { type: "submit" }, `Run ${name}`);
  const fieldBox = el("div", { class: "fields", "aria-label": "Payload fields" });
  const result = el("div", { class: "outcome-result", "aria-live": "polite" });
  const fieldNodes = new Map();

  function fieldNode(fieldName, info) {
    if (fieldNodes.has(fieldName)) return fieldNodes.get(fieldName);
    const problem = el("p", { class: "problem", id: `field-${fieldName}-error`, hidden: true });
    const node = el("div", { class: "field", "data-field": fieldName },
      el("code", {}, fieldName), info ? el("span", { class: "muted" }, ` ${info}`) : null, problem);
    fieldNodes.set(fieldName, { node, problem });
    fieldBox.append(node);
    return fieldNodes.get(fieldName);
  }
  for (const f of fields) fieldNode(f.name, `${f.type}${f.required ? ", required" : ""}`);

  function clearFieldErrors() {
    for (const { node, problem } of fieldNodes.values()) {
      node.classList.remove("bad");
      problem.hidden = true;
      problem.textContent = "";
    }
  }

  function check() {
    try {
      const value = editor.value.trim() ? JSON.parse(editor.value) : {};
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("the payload must be a JSON object");
      }
      editor.setAttribute("aria-invalid", "false");
      status.className = "fine";
      status.textContent = "Valid JSON";
      button.disabled = false;
      return value;
    } catch (error) {
      editor.setAttribute("aria-invalid", "true");
      status.className = "problem";
      status.textContent = `Invalid JSON: ${error.message}`;
      button.disabled = true;
      return undefined;
    }
  }
  editor.addEventListener("input", check);

  const form = el("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    const payload = check();
    if (payload === undefined) return;
    button.disabled = true;
    clearFieldErrors();
    fill(result, el("p", { class: "muted" }, "Running…"));
    try {
      const { data } = await api(`tasks/${encodeURIComponent(name)}/run`,
                                 { method: "POST", body: { payload } });
      showResult(data);
    } catch (error) {
      if (error instanceof AuthError) { signIn(error.message); return; }
      fill(result, el("p", { class: "problem", role: "alert" }, error.message));
    } finally {
      button.disabled = false;
    }
  } },
    el("label", { for: "payload" }, "Payload (JSON object)"), editor, status,
    fields.length ? el("p", { class: "muted" }, "Fields of the payload schema:") : null,
    fieldBox,
    el("div", { class: "row" }, button));

  function showResult(data) {
    const run = data.run;
    const runLink = run ? el("p", {}, el("a", { href: `#/runs/${run.id}` }, "Run details")) : null;
    if (data.ok) {
      fill(result, el("h2", {}, badge("ok"), " Result"),
                             el("pre", { class: "result" }, json(data.result)), runLink);
      return;
    }
    const error = data.error || {};
    const errors = error.errors || [];
    const loose = [];
    for (const problem of errors) {
      if (!problem.field) { loose.push(problem.message); continue; }
      const { node, problem: slot } = fieldNode(problem.field.split(".")[0], null);
      node.classList.add("bad");
      slot.hidden = false;
      slot.textContent = slot.textContent ? `${slot.textContent}; ` : "";
      slot.textContent += `${problem.field}: ${problem.message}`;
    }
    const trace = error.traceback || (run && run.traceback);
    fill(result,
      el("h2", {}, badge(run ? run.outcome : "error"), ` Failed (HTTP ${data.status})`),
      el("p", { class: "problem", role: "alert" }, error.message || "failed"),
      loose.map((m) => el("p", { class: "problem" }, m)),
      trace ? [el("h3", {}, "Traceback"), el("pre", { class: "traceback" }, trace)] : null,
      runLink);
    if (errors.length) fieldBox.querySelector(".bad")?.scrollIntoView({ block: "nearest" });
  }

  show(`Run ${name}`, el("p", {}, el("a", { href: "#/tasks" }, "← Tasks")),
       task.description ? el("p", {}, task.description) : null, form, result);
  check();
  editor.focus();
}

// -- jobs ------------------------------------------------------------------------

function noQueue() {
  show("Jobs", el("p", { class: "muted" },
    "This server has no job queue: jobs appear here once the queue is available."));
}

async function jobsView() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filters = { status: params.get("status") || "", task: params.get("task") || "" };
  if (!state.tasks) state.tasks = (await apiData("tasks")).tasks;
  const counts = el("div", { class: "counts", "aria-label": "Jobs per status" });
  function showCounts(data) {
    fill(counts, ...JOB_STATUSES.map((s) => el("div", { class: "count" },
      el("strong", {}, String(data[s] ?? 0)), badge(s))));
  }
  const form = el("form", { class: "filters", "aria-label": "Filter jobs", onchange: () => {
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
    location.hash = `#/jobs${query.toString() ? "?" + query : ""}`;
  }, onsubmit: (event) => event.preventDefault() },
    select("status", "Status", JOB_STATUSES, filters.status),
    select("task", "Task", state.tasks.map((t) => t.name), filters.task));
  const body = el("tbody");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Older jobs");
  show("Jobs", counts, form, el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ["Job", "Task", "Status", "Attempts", "Run at", "Last error"]
      .map((h) => el("th", { scope: "col" }, h)))), body)), el("p", {}, more));
  const rows = new Map();
  function jobRow(job) {
    return el("tr", { "data-job": job.id },
      el("td", { class: "mono" }, el("a", { href: `#/jobs/${job.id}` }, job.id.slice(0, 12))),
      el("td", {}, job.task), el("td", {}, badge(job.status)),
      el("td", {}, `${job.attempts} / ${job.max_attempts}`), el("td", {}, when(job.run_at)),
      el("td", { class: "mono" }, job.last_error || ""));
  }
  let cursor = null;
  async function load() {
    const query = pageQuery(filters, cursor);
    const { ok, status, data: page } = await api(`jobs?${query}`, { outside: true });
    if (status === 404) { noQueue(); return false; }
    if (!ok) throw new Error(page.message);
    for (const job of page.jobs) {
      const row = jobRow(job);
      rows.set(job.id, row);
      body.append(row);
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    return true;
  }
  more.addEventListener("click", () => load().catch((e) => alert(e.message)));
  if (!await load()) return;
  const counted = await api("job-counts");
  if (counted.ok) showCounts(counted.data.counts);
  let recount = null;
  state.listeners.add((event, data) => {
    if (event === "jobs") showCounts(data);
    if (event !== "job") return;
    recount ??= setTimeout(async () => {
      recount = null;
      const fresh = await api("job-counts");
      if (fresh.ok) showCounts(fresh.data.counts);
    }, 300);
    const row = jobRow(data);
    const old = rows.get(data.id);
    if (old) old.replaceWith(row);
    else if ((!filters.status || data.status === filters.status)
             && (!filters.task || data.task === filters.task)) body.prepend(row);
    rows.set(data.id, row);
  });
}

async function jobView(id) {
  const { ok, data } = await api(`jobs/${encodeURIComponent(id)}`, { outside: true });
  if (!ok) { show("Job", el("p", { class: "problem", role: "alert" }, data.message)); return; }
  const job = data;
  const message = el("p", { "aria-live": "polite" });
  async function act(action) {
    const response = await api(`jobs/${encodeURIComponent(id)}/${action}`,
                                { method: "POST", body: {}, outside: true });
    if (response.ok) route();
    else fill(message, el("span", { class: "problem" }, response.data.message));
  }
  const canRetry = job.status === "failed" || job.status === "cancelled";
  const canCancel = job.status === "pending" || job.status === "running";
  show(`Job of ${job.task}`,
    el("p", {}, el("a", { href: "#/jobs" }, "← All jobs")),
    el("dl", { class: "facts card" },
      el("dt", {}, "Status"), el("dd", {}, badge(job.status)),
      el("dt", {}, "Task"), el("dd", {}, job.task),
      el("dt", {}, "Attempts"), el("dd", {}, `${job.attempts} / ${job.max_attempts}`),
      el("dt", {}, "Run at"), el("dd", {}, when(job.run_at)),
      el("dt", {}, "Created"), el("dd", {}, when(job.created_at)),
      el("dt", {}, "Queue"), el("dd", {}, job.queue || "–"),
      el("dt", {}, "Key"), el("dd", {}, job.key || "–"),
      el("dt", {}, "Trigger"), el("dd", {}, job.trigger),
      el("dt", {}, "Job id"), el("dd", { class: "mono" }, job.id)),
    el("div", { class: "row" },
      el("button", { type: "button", disabled: !canRetry, onclick: () => act("retry") }, "Retry"),
      el("button", { type: "button", class: "secondary", disabled: !canCancel,
                     onclick: () => act("cancel") }, "Cancel")),
    message,
    block("Payload", job.payload), block("Result", job.result),
    block("Last error", job.last_error), block("Traceback", job.traceback));
  state.listeners.add((event, changed) => { if (event === "job" && changed.id === id) route(); });
}

// -- start -----------------------------------------------------------------------

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  signIn("");
});
window.addEventListener("hashchange", () => {
  route();
  main().focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
route();
