// Run a Cloudflare Python Worker's `src/` inside real Pyodide under Node.
//
// `wrangler dev` cannot run Python Workers offline (it downloads a Pyodide
// bundle), so the tests drive the generated entry here instead: real Pyodide
// from npm (pinned in tools/cloudflare), Cloudflare's real SDK wheel
// `workers-runtime-sdk` unpacked into site-packages, and stand-ins only for
// the two modules that exist solely inside workerd:
//   _pyodide_entrypoint_helper  (patchWaitUntil, cloudflare:workers module, doAnImport)
//   _cloudflare_compat_flags    (compatibility flags as booleans)
// The entry module is imported like workerd does (main module name without
// `.py`), `Default(ctx, env)` is instantiated, and each call in the spec is
// made the way workerd's entrypoint wrapper makes it: `fetch(request)` with a
// JS Request, `scheduled(controller, env, ctx)`; a returned SDK Response is
// unwrapped through `.js_object`.
//
// Usage: node harness.mjs SPEC.json   (prints one JSON object on stdout)
// SPEC: {tools, wheel, src, main?, env?, queues?, pythonEnv?, collect?, calls: [
//          {kind: "scheduled", cron, scheduledTime}
//        | {kind: "fetch", method?, url, headers?, body?}
//        | {kind: "queue", queue, messages: [{id, body, attempts}]}]}
//        (each may carry its own env)
// `queues` names env bindings that are Queue producers (class WorkerQueue, as
// workerd names them, so the SDK wraps them): what each call sends is reported
// in `sent` ({binding, body, options}). A `queue` call hands the Worker a
// MessageBatch; what it did to each message is reported in `messages`
// ({id, action: "ack" | "retry", options}). Both follow Cloudflare's
// documented JavaScript API (queues/configuration/javascript-apis).
// `env` is the Worker's env (bindings, secrets); `pythonEnv` goes to os.environ;
// `collect` names files in Pyodide's file system whose text each call reports
// (then deletes), so tasks can record what they received.
// Result: {import, calls: [{kind, returned?, response?, error?, waitUntil, logs, files,
//                            sent, messages?}]}

import { readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const require = createRequire(path.join(spec.tools, "package.json"));
const { loadPyodide } = require("pyodide");

const BUNDLE_DIR = "/session/metadata"; // where workerd places a Worker's modules

let logs = [];
const pyodide = await loadPyodide({
  stdout: (line) => logs.push({ stream: "stdout", line }),
  stderr: (line) => logs.push({ stream: "stderr", line }),
});

function copyTree(hostDir, fsDir) {
  pyodide.FS.mkdirTree(fsDir);
  for (const name of readdirSync(hostDir).sort()) {
    if (name === "__pycache__") continue;
    const hostPath = path.join(hostDir, name);
    const fsPath = `${fsDir}/${name}`;
    if (statSync(hostPath).isDirectory()) copyTree(hostPath, fsPath);
    else pyodide.FS.writeFile(fsPath, readFileSync(hostPath));
  }
}

// The SDK wheel, unpacked into site-packages as an installer would.
pyodide.FS.writeFile("/tmp/sdk.whl", readFileSync(spec.wheel));
pyodide.runPython(`
import site, sys, zipfile
zipfile.ZipFile("/tmp/sdk.whl").extractall(site.getsitepackages()[0])
sys.dont_write_bytecode = True
`);

// --- workerd-only modules -------------------------------------------------
class ExecutionContext {
  constructor() {
    this.received = [];
  }
  waitUntil(promise) {
    this.received.push((async () => await promise)());
  }
  passThroughOnException() {}
  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }
}

class ScheduledController {
  constructor(cron, scheduledTime) {
    this.cron = cron;
    this.scheduledTime = scheduledTime;
  }
  noRetry() {}
  get [Symbol.toStringTag]() {
    return "ScheduledController";
  }
}

// A Python awaitable handed to a JS function arrives as a *borrowed* PyProxy
// that Pyodide destroys when the call returns; like workerd's helper, keep an
// owned copy so the work can still be awaited after the handler returned.
const patched = new WeakSet();
function patchWaitUntil(ctx) {
  if (patched.has(ctx)) return;
  const original = ctx.waitUntil.bind(ctx);
  ctx.waitUntil = (value) => {
    const owned = typeof value?.copy === "function" ? value.copy() : value;
    original(owned);
  };
  patched.add(ctx);
}

let sent = [];
class WorkerQueue {
  constructor(binding) {
    this.binding = binding;
  }
  async send(body, options) {
    sent.push({ binding: this.binding, body, options: options ?? null });
  }
  async sendBatch(messages, options) {
    for (const m of messages) sent.push({ binding: this.binding, body: m.body, options: options ?? null });
  }
  get [Symbol.toStringTag]() {
    return "WorkerQueue";
  }
}

class Message {
  constructor(spec, record) {
    this.id = spec.id;
    this.timestamp = new Date(spec.timestamp ?? 0);
    this.body = spec.body;
    this.attempts = spec.attempts ?? 1;
    this.record = record;
  }
  ack() {
    this.record.push({ id: this.id, action: "ack", options: null });
  }
  retry(options) {
    this.record.push({ id: this.id, action: "retry", options: options ?? null });
  }
}

class MessageBatch {
  constructor(queue, messages) {
    this.queue = queue;
    this.messages = messages;
  }
  ackAll() {
    for (const m of this.messages) m.ack();
  }
  retryAll(options) {
    for (const m of this.messages) m.retry(options);
  }
}

const env = { ...(spec.env ?? {}) };
for (const name of spec.queues ?? []) env[name] = new WorkerQueue(name);
let currentCtx = null;
pyodide.registerJsModule("_pyodide_entrypoint_helper", {
  cloudflareWorkersModule: {
    env,
    waitUntil: (p) => currentCtx.waitUntil(p),
  },
  cloudflareSocketsModule: {},
  doAnImport: (name) => import(name),
  patchWaitUntil,
});
pyodide.registerJsModule("_cloudflare_compat_flags", {
  python_workflows_implicit_dependencies: false,
  python_request_headers_preserve_commas: false,
  ...(spec.compatFlags ?? {}),
});

// --- the Worker -----------------------------------------------------------
copyTree(spec.src, BUNDLE_DIR);
pyodide.runPython(`import os, sys; sys.path.insert(0, "${BUNDLE_DIR}"); os.chdir("${BUNDLE_DIR}")`);
const osEnviron = pyodide.pyimport("os").environ;
for (const [key, value] of Object.entries(spec.pythonEnv ?? {})) osEnviron.__setitem__(key, value);

function collectFiles() {
  const files = {};
  for (const file of spec.collect ?? []) {
    if (pyodide.FS.analyzePath(file).exists) {
      files[file] = pyodide.FS.readFile(file, { encoding: "utf8" });
      pyodide.FS.unlink(file);
    } else {
      files[file] = null;
    }
  }
  return files;
}

function toPlain(value) {
  if (value && typeof value.toJs === "function") {
    const plain = value.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
    value.destroy?.();
    return plain;
  }
  return value === undefined ? null : value;
}

function describeError(err) {
  return { name: err?.type ?? err?.name ?? "Error", message: String(err?.message ?? err) };
}

const result = { import: null, calls: [] };
let main = null;
try {
  main = pyodide.pyimport(spec.main ?? "entry");
  result.import = { ok: true, logs };
} catch (err) {
  result.import = { ok: false, error: describeError(err), logs };
}
logs = [];

for (const call of main ? spec.calls : []) {
  // workerd makes one entrypoint instance per event, with that event's ctx.
  const ctx = new ExecutionContext();
  currentCtx = ctx;
  const callEnv = call.env ?? env;
  const instance = main.Default(ctx, callEnv);
  const out = { kind: call.kind };
  try {
    if (call.kind === "scheduled") {
      const controller = new ScheduledController(call.cron, call.scheduledTime);
      // workerd passes (controller, env, ctx); `controllerOnly` checks the entry
      // also copes with the JS class-entrypoint shape, scheduled(controller).
      const args = call.controllerOnly ? [controller] : [controller, callEnv, ctx];
      out.returned = toPlain(await instance.scheduled(...args));
    } else if (call.kind === "fetch") {
      const request = new Request(call.url, {
        method: call.method ?? "GET",
        headers: call.headers ?? {},
        body: call.body ?? undefined,
      });
      let response = await instance.fetch(request);
      response = response?.js_object ?? response;
      out.response = {
        status: response.status,
        headers: Object.fromEntries(response.headers.entries()),
        body: await response.text(),
      };
    } else if (call.kind === "queue") {
      const record = [];
      out.messages = record;
      const batch = new MessageBatch(call.queue, call.messages.map((m) => new Message(m, record)));
      out.returned = toPlain(await instance.queue(batch, callEnv, ctx));
    } else {
      throw new Error(`unknown call kind ${call.kind}`);
    }
  } catch (err) {
    out.error = describeError(err);
  }
  const settled = await Promise.allSettled(ctx.received);
  out.waitUntil = settled.map((s) =>
    s.status === "fulfilled"
      ? { status: "fulfilled", value: toPlain(s.value) }
      : { status: "rejected", reason: describeError(s.reason) },
  );
  instance.destroy();
  out.files = collectFiles();
  out.sent = sent;
  sent = [];
  out.logs = logs;
  logs = [];
  result.calls.push(out);
}

// Exit once written: timers of cancelled Python sleeps (a task cancelled at
// its timeout) would otherwise keep Node alive until they fire.
process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
