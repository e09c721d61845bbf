"""Tests for claims/calibrate.py's rewrite of the tolerance table: only the measured parts of the named
entries' calibration fields change; every comment, other field and entry stays as written."""

from __future__ import annotations

import shutil

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from claims import calibrate
from ncsim import checks

TABLE = calibrate.CLAIMS_DIR / checks.TOLERANCES


def _basis(calibration: str) -> str:
    for marker in calibrate.MEASURED_MARKERS:
        calibration = calibration.split(marker)[0]
    return calibration


def test_rewriting_the_tolerance_table_changes_exactly_the_named_calibrations(tmp_path):
    path = tmp_path / TABLE.name
    shutil.copy(TABLE, path)
    before_text = path.read_text(encoding="utf-8")
    before = tomllib.loads(before_text)
    named = [name for name, entry in before.items() if "calibration" in entry][:3:2]  # the 1st and 3rd
    rows = {
        name: f'Calibration seeds 7,8 (data seed = training seed): run-{i} "0.5" -> reproduces.'
        for i, name in enumerate(named)
    }
    assert calibrate.write_calibration(path, rows) == []
    after_text = path.read_text(encoding="utf-8")
    after = tomllib.loads(after_text)
    assert after.keys() == before.keys()
    for name, entry in before.items():
        want = {**entry, "calibration": f"{_basis(entry['calibration'])} {rows[name]}"} if name in rows else entry
        assert after[name] == want, name
    changed = [(old, new) for old, new in zip(before_text.splitlines(), after_text.splitlines()) if old != new]
    assert len(before_text.splitlines()) == len(after_text.splitlines()) and len(changed) == len(rows)
    assert all(old.startswith("calibration = ") and new.startswith("calibration = ") for old, new in changed)

    def comments(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.lstrip().startswith("#")]

    assert len(comments(before_text)) > 10 and comments(after_text) == comments(before_text)


def test_rewriting_keeps_inline_comments_escapes_and_reports_what_it_could_not_write(tmp_path):
    path = tmp_path / "tolerances.toml"
    path.write_text(
        "# why these thresholds\n"
        "[a]\n"
        "value = 0.05  # the network's own target\n"
        'calibration = "Basis with \\"quotes\\" and a \\\\ backslash. Calibration seeds 1: old"  # kept too\n'
        "\n"
        "# an entry without a calibration field\n"
        "[b]\n"
        "value = 1\n",
        encoding="utf-8",
    )
    unwritten = calibrate.write_calibration(path, {"a": 'Calibration seeds 2: x "1" \\ y.', "b": "new", "c": "new"})
    assert unwritten == ["b", "c"]
    text = path.read_text(encoding="utf-8")
    assert tomllib.loads(text) == {
        "a": {"value": 0.05, "calibration": 'Basis with "quotes" and a \\ backslash. Calibration seeds 2: x "1" \\ y.'},
        "b": {"value": 1},
    }
    for comment in (
        "# why these thresholds",
        "# the network's own target",
        "# kept too",
        "# an entry without a calibration field",
    ):
        assert comment in text
    assert not list(tmp_path.glob("*.tmp"))


def test_rewriting_twice_with_the_same_rows_gives_the_same_file(tmp_path):
    path = tmp_path / TABLE.name
    shutil.copy(TABLE, path)
    name = next(
        name for name, entry in tomllib.loads(path.read_text(encoding="utf-8")).items() if "calibration" in entry
    )
    rows = {name: "Calibration seeds 7: standard-s7-d7 0.1 -> reproduces."}
    calibrate.write_calibration(path, rows)
    once = path.read_text(encoding="utf-8")
    calibrate.write_calibration(path, rows)
    assert path.read_text(encoding="utf-8") == once
