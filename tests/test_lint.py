"""The code is linted: `ruff check` over the repository passes with the configuration in pyproject.toml
([tool.ruff]: pyflakes, pycodestyle, import order, bugbear, pyupgrade; 120 columns). ruff is in the
test extra, so CI has it; a missing ruff is a failure naming the install command, not a skip."""

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
    done = subprocess.run([*ruff(), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"ruff check found problems (fix them, or `ruff check --fix`):\n{done.stdout}"
