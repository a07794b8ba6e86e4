"""scripts/setup.sh installs only when what it installs from changed (the install-once stamp).

The script runs for real (bash) in a copy of the repository's files it reads, with a stand-in Python
on PATH: ``python3 -m venv .venv`` makes a ``.venv/bin/python`` that records its arguments instead of
running pip, so the test sees exactly which installs the script decided to run. A stand-in
``chromium`` keeps the test install from reaching for apt.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python3 and for .venv/bin/python: creates the venv, records every other call.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
echo "$*" >> "$SETUP_LOG"
[ -z "${PIP_FAILS:-}" ]
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(REPO / "requirements-test-nodeps.txt", root / "requirements-test-nodeps.txt")
    tools = tmp_path / "bin"
    tools.mkdir()
    _executable(tools / "python3", FAKE_PYTHON)
    _executable(tools / "chromium", "#!/bin/sh\nexit 0\n")
    return root


def run_setup(root: Path, extra: str | None = None, fail: bool = False) -> list[str]:
    """Run the script; return the calls it made to .venv/bin/python (one line each)."""
    log = root.parent / "calls.log"
    log.write_text("")
    env = {
        "PATH": f"{root.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(root.parent),
        "SETUP_LOG": str(log),
    }
    if fail:
        env["PIP_FAILS"] = "1"
    result = subprocess.run(
        ["bash", "scripts/setup.sh", *([extra] if extra else [])], cwd=root, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert (result.returncode != 0) == fail, result.stderr
    return log.read_text().splitlines()


def installs(calls: list[str]) -> list[str]:
    """What was installed: the last argument of each ``pip install``."""
    return [call.split()[-1] for call in calls if call.startswith("-m pip install")]


def test_installs_once_and_again_only_when_the_dependencies_change(checkout: Path):
    assert installs(run_setup(checkout)) == ["pip", "torch==2.13.0", "."]  # the first start
    assert run_setup(checkout) == []  # the next starts: nothing
    with (checkout / "pyproject.toml").open("a") as f:
        f.write("\n# a changed dependency\n")
    assert installs(run_setup(checkout)) == ["pip", "torch==2.13.0", "."]
    assert run_setup(checkout) == []


def test_a_test_install_serves_the_bot_and_follows_the_test_requirements(checkout: Path):
    assert installs(run_setup(checkout, "test")) == [
        "pip", "torch==2.13.0", ".[test]", "requirements-test-nodeps.txt"
    ]
    assert run_setup(checkout, "test") == []
    assert run_setup(checkout) == []  # the bot after a test install: it has all it needs
    with (checkout / "requirements-test-nodeps.txt").open("a") as f:
        f.write("\n# one more package for the tests\n")
    assert installs(run_setup(checkout)) == []  # the bot does not need the test requirements
    assert installs(run_setup(checkout, "test"))[-1] == "requirements-test-nodeps.txt"
    # A bot install does not satisfy the tests: after one, the test install runs again.
    with (checkout / "pyproject.toml").open("a") as f:
        f.write("\n# a changed dependency\n")
    assert installs(run_setup(checkout)) == ["pip", "torch==2.13.0", "."]
    assert installs(run_setup(checkout, "test"))[-2:] == [".[test]", "requirements-test-nodeps.txt"]


def test_a_failed_install_is_tried_again_on_the_next_start(checkout: Path):
    run_setup(checkout, fail=True)  # pip failed: set -e stops the script before the stamp is written
    assert not (checkout / ".venv" / ".kandinsky-installed").exists()
    assert installs(run_setup(checkout)) == ["pip", "torch==2.13.0", "."]


def test_the_readme_opens_with_the_playground_and_the_two_commands():
    readme = (REPO / "README.md").read_text()
    first_screen = readme.split("\n## Using the bot", 1)[0]
    assert first_screen.index("## Try it first: the playground") < first_screen.index("## Quick start")
    for script in ("scripts/try.sh", "scripts/run-bot.sh", "scripts/test.sh"):
        assert f"\n{script}" in first_screen, script  # a command line of its own in a code block
        path = REPO / script
        assert os.access(path, os.X_OK) and "scripts/setup.sh" in path.read_text(), script
    # The token it shows looks like one; the placeholder is refused by the bot's own check.
    from app.config import Settings

    Settings(_env_file=None, bot_token="110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
    assert "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" in first_screen
    with pytest.raises(ValueError, match="malformed"):
        Settings(_env_file=None, bot_token="<the token @BotFather gave you>")
