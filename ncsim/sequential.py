"""Group-sequential decisions: seeds are added to a configuration until every check of it is decided.

A check over seeds (rule "mean" or "equivalence", ncsim.checks) is looked at when its configuration has
n = b, 2b, ..., K b seeds (b: the session's block of seeds, 5 by default; K = LOOKS = 4, so at most 20
seeds). At each look the rule's bounds are taken at the one-sided level alpha_k = ALPHA / K (Bonferroni
over the planned looks, the simplest alpha-spending rule that holds whatever correlates the looks):

    reproduces                 the (1 - alpha_k) bound of the mean clears the threshold;
    does not reproduce         the bound the other way lies beyond it (significantly on the failing side);
    otherwise                  undecided: the configuration gets the next block of seeds, and every
                               check of it is decided again on all of them.

Over all looks the chance of a "reproduces" when the true mean is on the failing side, and of a "does
not reproduce" when it is on the holding side, is each at most ALPHA = 0.05 (the union bound). A check
still undecided at the last look K b ends "within the indifference zone": with BETA = 0.05 the design
decides, with probability at least 1 - BETA, every check whose mean lies further than

    delta = (t_{1 - alpha_K, n-1} + t_{1 - BETA, n-1}) s / sqrt(n)

from its threshold (`resolution`; s: the seed standard deviation, on the log scale for rule scale
"log"), so an undecided check at n = K b has its mean within delta of the threshold at that rate. Each
tolerance states the smallest departure that must be decided (`Tolerance.indifference`); the report
says where the seeds a session could afford resolve less than that, and how many seeds would
(`seeds_needed`). A session whose budget ends a configuration's looks before K b leaves its undecided
checks "undecided", with the n they reached.

Rule "every" (an exact statement of each run) is decided at the first look: one failing seed refutes it.

Sources: Jennison & Turnbull, "Group Sequential Methods with Applications to Clinical Trials" (2000),
Ch. 2 and 7 (alpha spending; a one-sided test with an indifference zone); Bonferroni's bound as the
conservative spending rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ncsim.checks import ALPHA, Tolerance

LOOKS = 4  # n = 5, 10, 15, 20 with the default block of 5 seeds
BETA = ALPHA
UNDECIDED = "undecided"
INDIFFERENT = "within the indifference zone"
SEQUENTIAL_RULES = ("mean", "equivalence")


@dataclass(frozen=True)
class Design:
    """The looks of a session: `block` seeds per look (the session's seeds), at most `looks` looks."""

    block: int
    looks: int = LOOKS

    @property
    def alpha(self) -> float:
        """alpha_k, the one-sided level of every look: ALPHA spent equally over the planned looks."""
        return ALPHA / self.looks

    @property
    def cap(self) -> int:
        """The most seeds a configuration gets: the last look's n."""
        return self.block * self.looks

    def look(self, n: int) -> int:
        """Which look n seeds are (1-based; a partial block counts as the look it falls in)."""
        return max(1, math.ceil(n / self.block))

    def verdict(self, tol: Tolerance, verdict: str, n: int) -> str:
        """The session's verdict of a check whose rule at level alpha gave `verdict` on n seeds:
        ncsim.checks.apply_rule's "inconclusive" is "within the indifference zone" at the cap, else
        "undecided" (more seeds would decide it)."""
        if verdict != "inconclusive":
            return verdict
        return INDIFFERENT if n >= self.cap and tol.rule in SEQUENTIAL_RULES else UNDECIDED


def next_seeds(seeds: Sequence[int], block: int) -> list[int]:
    """The next block of seeds after `seeds`: the `block` smallest seeds above the largest given."""
    start = max(seeds) + 1
    return list(range(start, start + block))


def _t(p: float, n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(1 - p, n - 1))


def spread(tol: Tolerance, values: Sequence[float]) -> float | None:
    """The seed standard deviation of the values on the rule's scale (log for "log" or "equivalence"),
    or None with fewer than two finite (and, on a log scale, positive) values."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    log = tol.rule == "equivalence" or tol.scale == "log"
    x = x[np.isfinite(x) & ((x > 0) if log else True)]
    if len(x) < 2:
        return None
    return float(np.std(np.log(x) if log else x, ddof=1))


def resolution(sd: float, n: int, alpha: float, beta: float = BETA) -> float:
    """delta: the distance from the threshold (on the rule's scale) beyond which n seeds of standard
    deviation `sd` decide a check with probability at least 1 - beta at level alpha (module docstring)."""
    return (_t(alpha, n) + _t(beta, n)) * sd / math.sqrt(n)


def seeds_needed(sd: float, delta: float, alpha: float, beta: float = BETA, most: int = 1000) -> int | None:
    """The fewest seeds n (>= 2) whose resolution at level alpha is at most `delta`; None beyond `most`."""
    if delta <= 0:
        return None
    for n in range(2, most + 1):
        if resolution(sd, n, alpha, beta) <= delta:
            return n
    return None


def summary(tol: Tolerance, values: Sequence[float], design: Design) -> dict:
    """What the record of a sequential check says of its design: its look and level, the indifference
    zone the tolerance asks for and the one its seeds resolve (both on the rule's scale; for a log scale
    also as factors), and the seeds that zone would need at this level."""
    n = len(values)
    out = {"look": design.look(n), "looks": design.looks, "alpha": design.alpha, "beta": BETA}
    if tol.rule not in SEQUENTIAL_RULES:
        return out
    sd = spread(tol, values)
    wanted = tol.indifference_delta
    out["indifference"] = wanted
    if sd is None or n < 2:
        return out
    resolved = resolution(sd, n, design.alpha)
    out |= {"resolved": resolved, "sd": sd, "seeds_needed": seeds_needed(sd, wanted, design.alpha)}
    return out


def settle(record, tol: Tolerance, design: Design):
    """A check record decided at the design's level (ncsim.checks.decide with alpha = design.alpha)
    with the session's verdict (Design.verdict) and what the design says of it (summary). The look is
    that of the configuration's seeds, runs that miss the check's premise included (ncsim.checks.Premise:
    the record's values are those of the runs that meet it)."""
    from dataclasses import replace

    values = [v for v in record.values if v is not None]
    seeds = len((record.premise or {}).get("runs") or record.values)
    return replace(
        record,
        verdict=design.verdict(tol, record.verdict, seeds),
        sequential=summary(tol, values, design) | {"n": record.n, "look": design.look(seeds)},
    )


def undecided(tol: Tolerance, values: Sequence[float], design: Design) -> bool:
    """Whether a look at these values leaves the check undecided, so that more seeds are due."""
    from ncsim.checks import apply_rule

    if tol.rule not in SEQUENTIAL_RULES or len(values) >= design.cap:
        return False
    return apply_rule(tol, values, design.alpha)["verdict"] == "inconclusive"


@dataclass(frozen=True)
class Planned:
    """One check of a session on one configuration: the claim's Check (ncsim.checks: its statistic and
    reference configuration `against`), its tolerance, the configuration, and whether it is a documented
    non-reproduction (claims/expected_failures.toml)."""

    check: object
    tolerance: Tolerance
    config: str
    expected: bool = False

    @property
    def against(self) -> str | None:
        return self.check.against


def plan(
    checks: Sequence[Planned],
    seeds: dict[str, list[int]],
    measure,
    design: Design,
    budget: float,
    cost,
) -> tuple[dict[str, list[int]], list[str], float]:
    """The next look: `seeds` (configuration -> its seeds so far) with one more block for every
    configuration that has an undecided check (`measure(check, seeds)` -> its values on the runs that
    meet the check's premise, or None when too few do: ncsim.checks.Premise) while the cost of
    the runs it adds stays within `budget` (`cost(config)`: the cost of one run, a default run = 1; a
    comparison's reference runs on the new seeds count too, once). Configurations whose undecided checks
    decide a claim come before those with only documented non-reproductions undecided, the cheapest
    first. A configuration at the design's cap gets no more, whatever its checks' values (some of its
    runs may miss a premise). Returns the new seeds, the configurations left undecided for want of
    budget, and the cost spent."""
    measured = [(c, measure(c, seeds[c.config])) for c in checks if len(seeds[c.config]) < design.cap]
    open_checks = [c for c, v in measured if v is not None and undecided(c.tolerance, v, design)]
    claim_deciding = {c.config for c in open_checks if not c.expected}
    have = {(c, s) for c, ss in seeds.items() for s in ss}
    have |= {(c.against, s) for c in checks if c.against for s in seeds[c.config]}

    def runs(config: str) -> set:  # the next block of a configuration, with its comparisons' references
        more = next_seeds(seeds[config], design.block)
        partners = {config} | {c.against for c in checks if c.config == config and c.against}
        return {(p, s) for p in partners for s in more}

    def price(config: str) -> float:
        return sum(cost(c) for c, _ in runs(config) - have)

    due = sorted({c.config for c in open_checks}, key=lambda c: (c not in claim_deciding, price(c), c))
    out, short, spent = dict(seeds), [], 0.0
    for config in due:
        if spent + price(config) > budget:
            short.append(config)
            continue
        spent += price(config)
        have |= runs(config)
        out[config] = seeds[config] + next_seeds(seeds[config], design.block)
    return out, short, spent
