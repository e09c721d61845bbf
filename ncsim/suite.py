"""The claims suite's named run configurations and default seeds.

Every configuration a claim, figure or control refers to by name ("standard", "adam", "no-wd", ...)
is a run of one of the presets shipped in ncsim/presets/, so the CLI (`ncsim train --preset ...`),
the claims and the report all train and read the very same specs.
"""

from __future__ import annotations

from functools import lru_cache

from ncsim.spec import RunSpec, load_specs

PRESETS = ("standard", "optimizers", "ablation", "controls")
DEFAULT_SEEDS = (0, 1, 2)
# Configurations the claims read, in the order a report shows them.
CLAIM_CONFIGS = ("standard", "adam", "lbfgs", "no-wd", "mse")


@lru_cache(maxsize=None)
def configs() -> dict[str, RunSpec]:
    """Name -> spec (seed as in the preset) for every run of the suite's presets."""
    out: dict[str, RunSpec] = {}
    for preset in PRESETS:
        for spec in load_specs(preset):
            out.setdefault(spec.name, spec)
    return out


def config(name: str, seed: int) -> RunSpec:
    """The named configuration with `seed`; KeyError listing the known names otherwise."""
    if name not in configs():
        raise KeyError(f"unknown run configuration {name!r}; known: {sorted(configs())}")
    return configs()[name].replace(seed=seed)


def parse_seeds(raw: str | None) -> list[int]:
    """"1,2,3" -> [1, 2, 3]; None -> DEFAULT_SEEDS; ValueError naming the bad input otherwise."""
    if raw is None:
        return list(DEFAULT_SEEDS)
    try:
        seeds = [int(s) for s in str(raw).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"seeds must be comma-separated integers, got {raw!r}") from None
    if not seeds:
        raise ValueError("seeds list is empty")
    return seeds
