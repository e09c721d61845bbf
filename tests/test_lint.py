"""The code is linted and formatted: `ruff check` and `ruff format --check` over the repository pass with
the configuration in pyproject.toml ([tool.ruff]: pyflakes, pycodestyle, import order, bugbear,
pyupgrade; ruff's formatter; 120 columns). ruff is in the test extra, so CI has it; a missing ruff is a
failure naming the install command, not a skip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ruff() -> list[str]:
    exe = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    assert Path(exe).exists(), "ruff is not installed: pip install -e '.[test]'"
    return [exe]


def test_ruff_check_passes():
    done = subprocess.run(
        [*ruff(), "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"ruff check found problems (fix them, or `ruff check --fix`):\n{done.stdout}"


def test_ruff_format_leaves_the_code_as_it_is():
    done = subprocess.run(
        [*ruff(), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"ruff format would change these files (run `ruff format .`):\n{done.stdout}"
