"""The report folders: <out>/runs/<UTC minute>Z, and <out>/latest naming the newest."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path


def new_folder(out: str | Path, now: datetime) -> Path:
    """<out>/runs/<UTC minute>Z, with -2, -3, ... appended when that minute already has one."""
    parent = Path(out) / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    stem = now.strftime("%Y-%m-%dT%H%MZ")
    for n in range(1, 1000):
        folder = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"no free report folder name for {stem} in {parent}")


def point_latest(out: str | Path, folder: Path) -> Path:
    """Make <out>/latest name `folder`: a relative symlink, replaced atomically; a text file holding the
    relative path where symlinks cannot be made."""
    latest = Path(out) / "latest"
    target = folder.relative_to(Path(out)).as_posix()
    tmp = latest.with_name(f".latest.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(target, target_is_directory=True)
    except OSError:
        tmp.write_text(target + "\n")
    os.replace(tmp, latest)
    return latest
