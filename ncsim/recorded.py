"""Runs recorded from a user's own training loop (ncsim.recorder.Recorder): their description and
where the store keeps them.

A recorded run is described by the user, not by a RunSpec: a configuration name, a seed, the number
of epochs, the evaluation schedules, and whatever other fields the user passes (weight_decay, lr,
...; JSON values). `RecordedSpec` holds that description and hashes it as the run's key,
"rec-<name>-s<seed>-<16 hex digits>", so that the runs of a configuration are found by name and seed
(`find`) without opening any record. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

SOURCE = "recorded"  # meta["source"] of a recorded run's record (a training run: no meta["kind"])
RECORDER_VERSION = 1  # enters every key: a change to what the recorder measures changes the keys
_NAME_RE = re.compile(r"[0-9A-Za-z_]+(-[0-9A-Za-z_]+)*")
_SCHEDULE_FIELDS = {"eval_schedule": "all", "layer_schedule": "log:12"}


class RecordedRunMissing(LookupError):
    """A recorded configuration lacks a seed (or the seed has several records); the message names
    what is missing and where."""


@dataclass(frozen=True)
class RecordedSpec:
    """The user's description of one recorded run. `fields` are the other JSON-able fields the user
    gave (the evaluation schedules among them); they read as attributes (spec.weight_decay)."""

    name: str
    seed: int
    epochs: int
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"recorded configuration name {self.name!r}: use letters, digits and _, "
                f"joined by single hyphens (e.g. 'digits-mlp')"
            )
        for what, v, low in (("seed", self.seed, 0), ("epochs", self.epochs, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{what} must be an integer >= {low}, got {v!r}")
        clash = {"name", "seed", "epochs", "data"} & set(self.fields)
        if clash:
            raise ValueError(
                f"fields {sorted(clash)} are not user fields (name, seed and epochs are arguments; data is reserved)"
            )
        try:
            json.dumps(self.fields, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"the fields of {self.name!r} must be JSON values (numbers, strings, lists): {e}"
            ) from None
        object.__setattr__(self, "fields", {**_SCHEDULE_FIELDS, **self.fields})

    def __getattr__(self, name: str):
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(
            f"recorded run {self.__dict__.get('name')!r} has no field {name!r}; its fields: {sorted(fields)}"
        )

    @property
    def data(self) -> dict:
        """No MNIST-1D generator arguments: the user's own data."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "epochs": self.epochs, **self.fields}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecordedSpec:
        d = dict(d)
        return cls(d.pop("name"), d.pop("seed"), d.pop("epochs"), d)

    def replace(self, **changes) -> RecordedSpec:
        return RecordedSpec.from_dict({**self.to_dict(), **changes})

    def label(self) -> str:
        return f"{self.name}-s{self.seed}"

    def key(self) -> str:
        """ "rec-<name>-s<seed>-" and 16 hex digits of the sha256 of the whole description (canonical
        JSON) and RECORDER_VERSION."""
        blob = json.dumps(
            {**self.to_dict(), "recorder_version": RECORDER_VERSION}, sort_keys=True, separators=(",", ":")
        ).encode()
        return f"rec-{self.label()}-{hashlib.sha256(blob).hexdigest()[:16]}"


def is_recorded(meta: dict) -> bool:
    return meta.get("source") == SOURCE


def recorded_seeds(store, name: str) -> dict[int, list[str]]:
    """Seed -> the keys of configuration `name`'s recorded runs in `store` (ncsim.store.RunStore)."""
    pattern = re.compile(rf"rec-{re.escape(name)}-s(\d+)-[0-9a-f]{{16}}")
    out: dict[int, list[str]] = {}
    for key in store.keys():
        m = pattern.fullmatch(key)
        if m:
            out.setdefault(int(m[1]), []).append(key)
    return out


def find(store, name: str, seed: int) -> str:
    """The key of configuration `name`'s recorded run of `seed` in `store`; RecordedRunMissing naming
    the configuration, the seed and the store when there is none, or listing the keys when several
    descriptions of it are stored."""
    seeds = recorded_seeds(store, name)
    keys = seeds.get(seed, [])
    if len(keys) == 1:
        return keys[0]
    if keys:
        raise RecordedRunMissing(
            f"recorded configuration {name!r} has {len(keys)} runs of seed {seed} in {store.root} "
            f"(recorded with different epochs or fields): {', '.join(keys)}; remove all but one"
        )
    have = f"it has seeds {', '.join(map(str, sorted(seeds)))}" if seeds else "no run of it is recorded there"
    raise RecordedRunMissing(
        f"recorded configuration {name!r} has no run of seed {seed} in {store.root} ({have}); "
        f"record it with ncsim.Recorder({name!r}, seed={seed}, ...)"
    )
