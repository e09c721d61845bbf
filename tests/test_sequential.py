"""Tests for ncsim.sequential: the looks, their error rates, the resolution, and how a session adds seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from ncsim import checks, sequential
from ncsim.pytest_plugin.runs import look_again
from ncsim.suite import RunId


def tol(value=1.0, op="<=", rule="mean", scale="linear", indifference=0.5) -> checks.Tolerance:
    return checks.Tolerance("x_max", value, op, "x", "s", "c", rule, scale, indifference)


def run_design(values: np.ndarray, t: checks.Tolerance, design: sequential.Design) -> str:
    """The session's verdict of one check whose seeds come in the order of `values`: looks at n = b,
    2b, ... until decided or at the cap, as a claims session takes them."""
    n = design.block
    while True:
        verdict = checks.apply_rule(t, values[:n], design.alpha)["verdict"]
        if verdict != "inconclusive" or n >= design.cap:
            return design.verdict(t, verdict, n)
        n += design.block


def test_the_design_spends_alpha_over_its_looks():
    d = sequential.Design(block=5)
    assert (d.looks, d.alpha, d.cap) == (4, 0.0125, 20)
    assert [d.look(n) for n in (5, 10, 15, 20)] == [1, 2, 3, 4]
    assert d.verdict(tol(), "inconclusive", 10) == "undecided"
    assert d.verdict(tol(), "inconclusive", 20) == "within the indifference zone"
    assert d.verdict(tol(), "reproduces", 5) == "reproduces"
    assert d.verdict(tol(rule="every"), "does not reproduce", 5) == "does not reproduce"
    assert sequential.next_seeds([0, 1, 2, 3, 4], 5) == [5, 6, 7, 8, 9]
    assert sequential.next_seeds([100, 104], 2) == [105, 106]


@pytest.mark.parametrize("truth", [1.0, 1.3], ids=["at-threshold", "beyond"])
def test_a_false_reproduces_is_at_most_alpha_over_all_looks(truth):
    """With the mean on the failing side (or exactly at the threshold), the design says "reproduces" at
    most ALPHA of the time over its four looks (the union bound); simulated, 4000 draws."""
    rng = np.random.default_rng(0)
    design, t = sequential.Design(block=5), tol()
    said = [run_design(rng.normal(truth, 1.0, size=20), t, design) for _ in range(4000)]
    rate = np.mean([v == "reproduces" for v in said])
    assert rate <= checks.ALPHA + 3 * math.sqrt(checks.ALPHA * (1 - checks.ALPHA) / 4000)


def test_an_effect_beyond_the_resolution_is_decided_with_power():
    """A mean `resolution` beyond the threshold (in seed standard deviations, at the last look) is
    decided "reproduces" with probability at least 1 - BETA by the last look."""
    rng = np.random.default_rng(1)
    design, t = sequential.Design(block=5), tol()
    delta = sequential.resolution(1.0, design.cap, design.alpha)
    said = [run_design(rng.normal(1.0 - delta, 1.0, size=20), t, design) for _ in range(2000)]
    assert np.mean([v == "reproduces" for v in said]) >= 1 - sequential.BETA - 0.015


def test_seeds_needed_is_the_least_n_that_resolves_the_zone():
    n = sequential.seeds_needed(1.0, 0.5, 0.0125)
    assert sequential.resolution(1.0, n, 0.0125) <= 0.5 < sequential.resolution(1.0, n - 1, 0.0125)
    assert sequential.seeds_needed(1.0, 0.0, 0.0125) is None


def test_a_record_is_settled_with_its_look_and_zone():
    t = tol(value=0.05, scale="log", indifference=None)
    record = checks.decide(t, [0.04, 0.06, 0.05, 0.045, 0.055], alpha=0.0125)
    settled = sequential.settle(record, t, sequential.Design(block=5))
    assert record.verdict == "inconclusive" and settled.verdict == "undecided"
    d = settled.sequential
    assert (d["look"], d["looks"], d["n"]) == (1, 4, 5)
    assert d["indifference"] == pytest.approx(math.log(checks.INDIFFERENCE_FACTOR))
    assert d["resolved"] > 0 and d["seeds_needed"] >= 2
    assert "look 1 of 4" in checks.failure_message(settled) and "98.75% bound" in checks.failure_message(settled)


@dataclass(frozen=True)
class FakeCheck:
    tolerance: str
    against: str | None = None
    premise: checks.Premise | None = None


def planned(config, against=None, expected=False, name="x_max"):
    return sequential.Planned(FakeCheck(name, against), tol(), config, expected)


def test_plan_extends_undecided_configurations_within_the_budget():
    """Claim-deciding configurations first, the cheapest first; a comparison's reference runs on the new
    seeds are paid once; what the budget cannot pay is left short."""
    open_values, decided = [0.5, 1.5, 0.7, 1.4, 1.0], [0.1, 0.11, 0.09, 0.1, 0.12]
    values = {"a": open_values, "b": open_values, "c": decided, "d": open_values}
    checks_ = [planned("a", against="c"), planned("b", expected=True), planned("c"), planned("d")]
    seeds = {c: [0, 1, 2, 3, 4] for c in "abcd"}
    cost = {"a": 1.0, "b": 0.5, "c": 1.0, "d": 2.0}.get
    new, short, spent = sequential.plan(
        checks_, seeds, lambda p, s: values[p.config][: len(s)], sequential.Design(5), 12.5, cost
    )
    # a: 5 runs of a and 5 of its reference c, 10; d: 10 more, over the budget; b (an expected failure
    # only, so last): 2.5, which fits
    assert new["a"] == list(range(10)) and new["c"] == seeds["c"] and new["d"] == seeds["d"]
    assert new["b"] == list(range(10))
    assert short == ["d"] and spent == pytest.approx(12.5)


def test_a_session_trains_the_next_block_and_its_references():
    """look_again: the runs of each added block (and of a comparison's reference on them) are trained,
    then the checks are looked at again; the seeds each configuration ends with are recorded."""
    trained = []

    class Check(FakeCheck):
        def measure(self, run, ref):
            return run.value

    def obtain_run(config, seed, data_seed=None):
        return SimpleNamespace(value=[0.5, 1.5, 0.7, 1.4, 1.0][seed] if config == "a" and seed < 5 else 0.1)

    def train(runs):
        trained.extend(runs)

    session = SimpleNamespace(
        design=sequential.Design(5),
        budget=10.0,  # one block of a and its reference
        seeds=[0, 1, 2, 3, 4],
        planned=[sequential.Planned(Check("x_max", "ref"), tol(), "a")],
        added={},
        short=[],
        run_id=lambda c, s: RunId(c, s, s),
    )
    look_again(session, train, obtain_run)
    assert session.added == {"a": list(range(10))} and session.short == ["a"]  # still open, budget spent
    assert sorted(trained) == sorted(
        [RunId("a", s, s) for s in range(5, 10)] + [RunId("ref", s, s) for s in range(5, 10)]
    )


def test_a_check_whose_runs_miss_its_premise_gets_no_seeds():
    """More seeds cannot make a check evidence when too few of its runs meet the statement's premise:
    plan skips it (measure gives None); otherwise it is looked at on the runs that meet it."""
    open_values = [0.5, 1.5, 0.7, 1.4, 1.0]
    seeds = {"a": [0, 1, 2, 3, 4]}
    new, short, spent = sequential.plan(
        [planned("a")], seeds, lambda p, s: None, sequential.Design(5), 100.0, lambda c: 1.0
    )
    assert new == seeds and short == [] and spent == 0
    unmet = checks.Premise("exact collapse", lambda run: run.value, "<=", 0.0)

    class Check(FakeCheck):
        def measure(self, run, ref):
            return run.value

    session = SimpleNamespace(
        design=sequential.Design(5),
        budget=100.0,
        seeds=[0, 1, 2, 3, 4],
        planned=[sequential.Planned(Check("x_max", None, unmet), tol(), "a")],
        added={},
        short=[],
        run_id=lambda c, s: RunId(c, s, s),
    )
    trained = []
    look_again(session, trained.extend, lambda c, s, d=None: SimpleNamespace(value=open_values[s], status="ok"))
    assert trained == [] and session.added == {}
    # the runs that meet it are looked at: here one misses it and four open values remain, so a block is due
    some = checks.Premise("a terminal phase", lambda run: run.value, "<", 1.45)
    session.planned = [sequential.Planned(Check("x_max", None, some), tol(), "a")]
    look_again(session, trained.extend, lambda c, s, d=None: SimpleNamespace(value=open_values[s % 5], status="ok"))
    assert session.added["a"] == list(range(20))  # at the cap, though a fifth of its runs miss the premise
    kept = checks.decide(tol(), [0.5, 0.7, 1.4, 1.0] * 4, premise={"runs": [f"a-s{s}" for s in range(20)], "met": True})
    settled = sequential.settle(kept, tol(), sequential.Design(5))
    assert settled.verdict == "within the indifference zone" and settled.sequential["look"] == 4
