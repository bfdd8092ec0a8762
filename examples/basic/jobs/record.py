"""Shared helper of the example's tasks: append what a task received to the
file named by ``TASKPACK_EXAMPLE_RECORD`` (one JSON line per run), so you can
see scheduled runs and their ``scheduledTime``. Does nothing when unset."""

import json
import os


def record(task, payload):
    path = os.environ.get("TASKPACK_EXAMPLE_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"task": task, "payload": payload}, sort_keys=True) + "\n")
