"""Faults of issue 11 in the build and task discovery: builds killed with
``kill -9`` (their staging folders), symlinks under ``tasks/`` and file
names that are not UTF-8. Real ``taskpack`` processes; every bad input is
one error line naming the file, exit 2. docs/faults.md lists which test
covers which item."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import write_files

TASKPACK = str(Path(sys.executable).with_name("taskpack"))
TASK = """
from taskpack import define_task

@define_task
def run(event):
    return "ok"
"""


def taskpack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TASKPACK, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def staging_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".taskpack-build-"))


# -- item 15: staging folders of killed builds -------------------------------------------


def killed_mid_build(project: Path, out: Path, sig: int) -> subprocess.Popen[bytes]:
    """Start ``taskpack build`` and send ``sig`` once its staging folder
    exists; retried until a signal lands mid-build (the build is quick)."""
    for _ in range(40):
        proc = subprocess.Popen([TASKPACK, "build", "--root", str(project), "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not staging_left(out.parent):
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(sig)
            if sig == signal.SIGKILL:
                proc.wait(30)
            if staging_left(out.parent):
                return proc
        proc.wait(30)
    raise AssertionError("no build could be caught mid-way")


@pytest.fixture
def big_project(tmp_path: Path) -> Path:
    """Enough tasks that a build takes a moment to write."""
    files = {f"tasks/group{i % 10}/task{i}.py": TASK for i in range(400)}
    return write_files(tmp_path / "project", files)


def test_a_later_build_removes_staging_folders_of_killed_builds(big_project: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "site" / "out"
    out.parent.mkdir()
    assert taskpack("build", "--root", str(big_project), "--output", str(out)).returncode == 0
    for _ in range(3):
        killed_mid_build(big_project, out, signal.SIGKILL)
    assert staging_left(out.parent), "the killed builds left their staging folders"
    result = taskpack("build", "--root", str(big_project), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert staging_left(out.parent) == []
    assert (out / "taskpack.json").is_file()


def test_a_live_builds_staging_folder_is_left_alone(big_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "site" / "out"
    out.parent.mkdir()
    paused = killed_mid_build(big_project, out, signal.SIGSTOP)  # alive, mid-build
    try:
        (live,) = staging_left(out.parent)
        other = tmp_path / "site" / "other"
        result = taskpack("build", "--root", str(big_project), "--output", str(other))
        assert result.returncode == 0, result.stderr
        assert staging_left(out.parent) == [live]
    finally:
        paused.send_signal(signal.SIGCONT)
    assert paused.wait(60) == 0
    assert staging_left(out.parent) == []
    assert (out / "taskpack.json").is_file()


# -- item 16: symlinks under tasks/ -------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    root = write_files(tmp_path / "project", {"tasks/real.py": TASK,
                                               "lib/shared/extra.py": TASK,
                                               "lib/shared/notes.txt": "inside\n"})
    write_files(tmp_path / "outside", {"creds.txt": "secret\n", "evil.py": TASK})
    return root


COMMANDS = [("task", "list"), ("build",), ("dev", "--port", "0")]


@pytest.mark.parametrize("link", ["creds.txt", "evil.py"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_symlink_out_of_the_root_is_one_error_line(linked: Path, link: str,
                                                     command: tuple[str, ...]) -> None:
    (linked / "tasks" / link).symlink_to(Path("..") / ".." / "outside" / link)
    result = taskpack(*command, "--root", str(linked))
    outside = (linked.parent / "outside" / link).resolve()
    assert (result.returncode, result.stderr) == (2, (
        f"error: tasks/{link}: is a symlink to {outside}, outside the project root; taskpack "
        "reads nothing outside it (copy the file in, or remove the link)\n"))
    assert not (linked / ".output").exists()


def test_a_symlinked_folder_inside_the_root_is_walked(linked: Path) -> None:
    (linked / "tasks" / "shared").symlink_to(Path("..") / "lib" / "shared")
    listing = taskpack("task", "list", "--root", str(linked))
    assert listing.returncode == 0, listing.stderr
    assert "shared:extra" in listing.stdout
    result = taskpack("build", "--root", str(linked))
    assert result.returncode == 0, result.stderr
    bundled = linked / ".output" / "server" / "project" / "tasks" / "shared"
    assert (bundled / "extra.py").is_file() and not (bundled / "extra.py").is_symlink()
    assert (bundled / "notes.txt").read_text() == "inside\n"
    run = taskpack("task", "run", "shared:extra", "--root", str(linked))
    assert (run.returncode, run.stdout) == (0, '"ok"\n')


@pytest.mark.parametrize("target", [".", "..", "loop"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_symlink_loop_is_one_error_line(linked: Path, target: str,
                                          command: tuple[str, ...]) -> None:
    (linked / "tasks" / "loop").symlink_to(target)
    result = taskpack(*command, "--root", str(linked))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: tasks/loop: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


# -- item 17: a file name that is not UTF-8 -----------------------------------------------


@pytest.mark.parametrize(("where", "command"), [
    ("tasks", ("task", "list")), ("tasks", ("dev", "--port", "0")), ("tasks", ("build",)),
    ("helpers", ("build",)),  # only the build reads helper modules
], ids=["list", "dev", "build", "build-helper"])
def test_a_file_name_that_is_not_utf8_is_one_error_line(tmp_path: Path, where: str,
                                                        command: tuple[str, ...]) -> None:
    root = write_files(tmp_path / "project", {"tasks/real.py": TASK, "helpers/__init__.py": ""})
    name = os.fsdecode(b"helper\xff.py")
    (root / where / name).write_text(TASK)
    result = taskpack(*command, "--root", str(root))
    assert (result.returncode, result.stderr) == (2, (
        f"error: {where}/helper\\xff.py: the file name is not valid UTF-8; rename it "
        "(bundles and manifests name files in UTF-8)\n"))
