"""Verdict stability under resampled seeds (ncsim.report.stability)."""

from __future__ import annotations

from ncsim.checks import Tolerance, decide
from ncsim.report import stability as S


def _record(name, values, op="<=", value=0.05):
    return decide(Tolerance(name, value, op, "s", "src", "cal", "mean", "log"), values, config="standard")


def test_a_clear_check_never_changes_and_a_borderline_one_often_does():
    clear = _record("clear", [0.002, 0.0021, 0.0019, 0.002, 0.0022])
    borderline = _record("borderline", [0.03, 0.06, 0.04, 0.07, 0.035])
    out = S.stability([clear, borderline], draws=300)
    assert out["checks"] == 2
    assert 0 < out["expected_changes"] <= 1
    names = [t for t, _, _ in out["least_stable"]]
    assert names == ["borderline"]
    assert "borderline" in S.describe(out) and "of 2 verdicts" in S.describe(out)


def test_the_same_seed_draw_is_shared_and_the_result_is_reproducible():
    recs = [_record(f"c{i}", [0.03, 0.06, 0.04, 0.07, 0.035]) for i in range(3)]
    out = S.stability(recs, draws=100)
    assert out == S.stability(recs, draws=100)
    # identical checks on shared runs change together: each in the same share of draws, 0 or 3 per draw
    shares = {s for _, _, s in out["least_stable"]}
    assert len(out["least_stable"]) == 3 and len(shares) == 1
    assert out["q95_changes"] in (0.0, 3.0)
    assert out["expected_changes"] == 3 * shares.pop()


def test_nothing_to_resample():
    assert S.stability([_record("one", [0.01])]) is None
    assert "no check" in S.describe(None)
