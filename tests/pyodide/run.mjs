// Run a Python script inside real Pyodide (from npm) under Node, with the
// repo's `taskpack` package copied into Pyodide's file system.
// Usage: node run.mjs TOOLS_DIR TASKPACK_DIR SCRIPT.py
// SCRIPT defines `async def main() -> str`; its result is printed on stdout
// (a JSON string); Python's own
// stdout/stderr (e.g. log lines) go to stderr.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [tools, packageDir, script] = process.argv.slice(2);
const { loadPyodide } = createRequire(path.join(tools, "package.json"))("pyodide");
const pyodide = await loadPyodide({
  stdout: (line) => process.stderr.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copyTree(hostDir, fsDir) {
  pyodide.FS.mkdirTree(fsDir);
  for (const name of readdirSync(hostDir).sort()) {
    if (name === "__pycache__") continue;
    const hostPath = path.join(hostDir, name);
    if (statSync(hostPath).isDirectory()) copyTree(hostPath, `${fsDir}/${name}`);
    else pyodide.FS.writeFile(`${fsDir}/${name}`, readFileSync(hostPath));
  }
}

copyTree(packageDir, "/lib/taskpack-src/taskpack");
pyodide.runPython("import sys; sys.path.insert(0, '/lib/taskpack-src'); sys.dont_write_bytecode = True");
pyodide.runPython(readFileSync(script, "utf8"));
const result = await pyodide.globals.get("main")();
// Exit now: timers of cancelled sleeps would keep Node alive until they fire.
process.stdout.write(String(result) + "\n", () => process.exit(0));
