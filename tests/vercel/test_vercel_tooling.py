"""Phase A: the pinned ``vercel build`` works here on a hand-written project.

This checks the tooling (CLI pin, uv, Python 3.12 on PATH, no login), not
taskpack: if it fails, the preset tests cannot mean anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.vercel.conftest import HERE, VercelTools, write_project_json


def test_vercel_build_on_hand_written_project(vercel_tools: VercelTools, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(HERE / "minimal_project", project)
    write_project_json(project)

    proc = vercel_tools.build(project, tmp_path / "home")

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = project / ".vercel" / "output"
    config = json.loads((output / "config.json").read_text())
    declared = json.loads((project / "vercel.json").read_text())["crons"]
    assert config["version"] == 3
    assert config["crons"] == declared
    vc_config = json.loads((output / "functions/api/index.func/.vc-config.json").read_text())
    assert vc_config["runtime"] == "python3.12"
    assert "api/index.py" in vc_config["filePathMap"]
