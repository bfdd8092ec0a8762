"""`make demo`: the main job, end to end on examples/basic.

Lists the example's tasks and runs one through the CLI, as a newcomer would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "basic"
TASKPACK = str(Path(sys.executable).with_name("taskpack"))


def step(*args: str) -> None:
    print(f"\n$ taskpack {' '.join(args)}", flush=True)
    subprocess.run([TASKPACK, *args], cwd=EXAMPLE, check=True)


def main() -> None:
    step("task", "list")
    step("task", "run", "echo:payload", "--payload", '{"hello": "world"}')
    step("task", "run", "db:migrate")


if __name__ == "__main__":
    main()
