"""Clareza runs on Python 3.11 to 3.13: the package says so, and `make` takes
the newest Python of those that runs, or the one it is given, and refuses others.
CI runs this on 3.11 and on 3.13 (.ci/run)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNING = ".".join(map(str, sys.version_info[:3]))


def _make_python(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    """`make python` (the check every target runs first), with a clean make environment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON", "VENV"}
    }
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-s",
            "python",
            *(f"{k}={v}" for k, v in variables.items()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _fake_python(tmp_path: Path, name: str, version: tuple[int, int, int]) -> Path:
    """An interpreter that says it is `version`: this Python with sys.version_info replaced."""
    script = tmp_path / name
    code = f"import sys; sys.version_info = {(*version, 'final', 0)!r}; exec(sys.argv[2])"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{code}" "$@"\n')
    script.chmod(0o755)
    return script


def _broken_shim(tmp_path: Path) -> Path:
    """Like a pyenv shim of a version that is not active: it exists and fails."""
    script = tmp_path / "python3.13"
    script.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    script.chmod(0o755)
    return script


def test_the_package_accepts_python_3_11_to_3_13():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert project["requires-python"] == ">=3.11,<3.14"
    versions = [
        c.rsplit(":: ", 1)[1] for c in project["classifiers"] if c.count(".") == 1 and "Python" in c
    ]
    assert versions == ["3.11", "3.12", "3.13"]


def test_make_uses_the_python_it_is_given(tmp_path):
    result = _make_python(tmp_path, PYTHON=sys.executable)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"Using Python {RUNNING} ({sys.executable}) in .venv"


@pytest.mark.parametrize("version", [(3, 10, 13), (3, 14, 0)])
def test_make_refuses_a_python_outside_3_11_to_3_13(tmp_path, version):
    fake = _fake_python(tmp_path, "python3.x", version)

    result = _make_python(tmp_path, PYTHON=str(fake))

    assert result.returncode != 0
    shown = ".".join(map(str, version))
    assert f"Clareza needs Python 3.11, 3.12 or 3.13; PYTHON={fake} is {shown}." in result.stdout


def test_make_takes_the_first_candidate_that_runs_and_is_in_range(tmp_path):
    candidates = [_broken_shim(tmp_path), _fake_python(tmp_path, "python3", (3, 14, 0))]

    result = _make_python(
        tmp_path, PYTHON_CANDIDATES=" ".join(map(str, [*candidates, sys.executable]))
    )

    assert result.returncode == 0, result.stdout + result.stderr
    # The interpreter's own path, not the name it was found by.
    assert result.stdout.strip() == f"Using Python {RUNNING} ({sys.executable}) in .venv"


def test_make_says_what_to_do_when_no_candidate_fits(tmp_path):
    candidates = [_broken_shim(tmp_path), _fake_python(tmp_path, "python3", (3, 10, 13))]

    result = _make_python(tmp_path, PYTHON_CANDIDATES=" ".join(map(str, candidates)))

    assert result.returncode != 0
    assert "Clareza needs Python 3.11, 3.12 or 3.13, and none of" in result.stdout
    assert "PYTHON=/path/to/python3.x" in result.stdout
