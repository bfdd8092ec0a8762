"""`make demo`: the main job, end to end on examples/basic.

Lists the example's tasks and runs one through the CLI, as a newcomer would;
then builds it with the `server` preset and runs the built server briefly:
/_health, a task through the API with and without the token, SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "basic"
TASKPACK = str(Path(sys.executable).with_name("taskpack"))


def step(*args: str) -> None:
    print(f"\n$ taskpack {' '.join(args)}", flush=True)
    subprocess.run([TASKPACK, *args], cwd=EXAMPLE, check=True)


def http(method: str, url: str, token: str | None = None,
         body: dict[str, object] | None = None) -> tuple[int, str]:
    """One request; (status, body text), error statuses included."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_built() -> None:
    """Run the built server as production would, briefly."""
    port, token = free_port(), "demo-token"
    base = f"http://127.0.0.1:{port}"
    print(f"\n$ HOST=127.0.0.1 PORT={port} TASKPACK_TASKS_TOKEN={token} "
          "python .output/server/index.py &", flush=True)
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "TASKPACK_TASKS_TOKEN": token}
    server = subprocess.Popen([sys.executable, ".output/server/index.py"], cwd=EXAMPLE, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, text = http("GET", f"{base}/_health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the built server did not start") from None
                time.sleep(0.1)
        print(f"\n$ curl {base}/_health\n{status} {text}", flush=True)
        url = f"{base}/_nitro/tasks/echo:payload"
        status, text = http("POST", url, token, {"payload": {"hello": "server"}})
        print(f"\n$ curl -X POST -H 'Authorization: Bearer {token}' "
              f"-d '{{\"payload\": {{\"hello\": \"server\"}}}}' {url}\n{status} {text}",
              flush=True)
        status, text = http("POST", url)
        print(f"\n$ curl -X POST {url}    # no token\n{status} {text}", flush=True)
        print(f"\n$ kill -TERM {server.pid}", flush=True)
        server.send_signal(signal.SIGTERM)
        print(f"server exited with status {server.wait(60)}")
    finally:
        if server.poll() is None:
            server.kill()


def main() -> None:
    step("task", "list")
    step("task", "run", "echo:payload", "--payload", '{"hello": "world"}')
    step("task", "run", "db:migrate")
    step("build", "--preset", "server")
    serve_built()


if __name__ == "__main__":
    main()
