"""RunSpec: the frozen, serialisable description of one training run, and its content hash.

A spec is everything that determines a trajectory (data, model, optimisation, evaluation schedule,
seed). Two specs with equal fields have equal keys on every machine; the key names the run's record
in the store (ncsim.store). Specs come in and go out as plain dicts / TOML tables; a wrong key or an
invalid value (wrong type, non-finite, out of its range: see the MAX_* bounds and the [data] rules) is
a SpecError naming it and listing the valid choices, before anything trains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

# Part of every run's key: bump it when a change to the trainer changes what a spec produces, so that the
# store's records of the old trainer stop matching.
TRAINER_VERSION = 4

# Fields hashed only when they differ from their default (RunSpec.key), with the defaults: adding such a
# field leaves the key, and the stored record, of every spec that does not use it.
HASHED_WHEN_SET = {
    "eval_bn_stats": "running",
    "classifier": "learned",
    "label_smoothing": 0.0,
    "focal_gamma": 0.0,
    "label_noise": 0.0,
    "train_classes": 0,
    "precision": "fp32",
    "freeze_at_tpt": False,
}

MODELS = ("cnn1d", "cnn1d-seed")
OPTIMIZERS = ("sgd", "adam", "adamw", "lbfgs")
SCHEDULES = ("constant", "multistep", "cosine")
LOSSES = ("ce", "mse", "focal")
BN_STATS = ("running", "recomputed")
CLASSIFIERS = ("learned", "etf")
DEVICES = ("cpu", "cuda")
# The arithmetic of the training passes (ncsim.models, BlockNet.set_precision): "fp32" everywhere, or
# "bf16-mixed": the convolutions of each training pass in bfloat16, the rest, the master weights,
# optimizer state and every evaluation in float32 (metrics in float64 either way).
PRECISIONS = ("fp32", "bf16-mixed")
# Upper bounds: beyond them a run is a typo that would exhaust memory or never finish, not an experiment.
MAX_SEED = 2**63 - 1  # with the trainer's offset for its batch generator, still a valid torch seed
MAX_LR = 10.0
MAX_WEIGHT_DECAY = 1.0
MAX_WIDTH = 1024
MAX_KERNEL_SIZE = 99
MAX_EPOCHS = 100_000  # also bounds K in the every:K / log:K schedules
MAX_BATCH_SIZE = 1_000_000
MAX_TRAIN_SIZE = 1_000_000
MAX_LBFGS_ITER = 1000
MAX_FOCAL_GAMMA = 10.0
LBFGS_MAX_ITER_DEFAULT = 20  # torch.optim.LBFGS's max_iter
MAX_DATA_LENGTH = 1000  # every length of the MNIST-1D generator (template, padding, shift, signal)
# C: MNIST-1D's digit templates 0-9 (mnist1d.data.get_templates()). A spec's width and train_classes are
# bounded by it; ncsim.data.load checks the generated labels against it.
NUM_CLASSES = 10
# mnist1d.data.get_dataset_args() fields a spec may override (num_samples and train_split fix the
# 4000/1000 split and stay as the package sets them), each with its type and valid range (inclusive;
# padding is a pair (low, high) with 0 <= low <= high). template_len >= 2 gives the generator's
# interpolation two points even without padding; scale_coeff <= 1.99 keeps its random scale factor
# 1 + scale_coeff * (u - 1/2) positive; final_seq_length >= 4 leaves cnn1d-seed's two 2x max-pools a
# non-empty signal; seed is numpy's legacy seed range.
_DATA_RULES: dict[str, tuple[str, float, float]] = {
    "template_len": ("int", 2, MAX_DATA_LENGTH),
    "padding": ("pair", 0, MAX_DATA_LENGTH),
    "scale_coeff": ("float", 0.0, 1.99),
    "max_translation": ("int", 1, MAX_DATA_LENGTH),
    "corr_noise_scale": ("float", 0.0, 100.0),
    "iid_noise_scale": ("float", 0.0, 100.0),
    "shear_scale": ("float", 0.0, 100.0),
    "shuffle_seq": ("bool", 0, 1),
    "final_seq_length": ("int", 4, MAX_DATA_LENGTH),
    "seed": ("int", 0, 2**32 - 1),
}
DATA_ARGS = tuple(_DATA_RULES)
_SCHEDULE_RE = re.compile(r"^(all|none|every:[1-9]\d*|log:[1-9]\d*)$")


class SpecError(ValueError):
    """An invalid run description; the message names the field and the valid choices."""


@dataclass(frozen=True)
class RunSpec:
    """One training run. The field defaults are a generic starting point (cnn1d at width 32, SGD lr 0.1
    with momentum 0.9 and weight decay 5e-4, a multistep schedule over 100 epochs, cross-entropy, every
    epoch evaluated), not the suite's default regime: that regime is the `standard` preset
    (ncsim/presets/standard.toml: cnn1d-seed, lr 0.05, weight decay 5e-3, a cosine schedule). The
    defaults stay as they are because every stored run key is computed from the fields' values."""

    name: str = "run"
    # data
    data: tuple[tuple[str, Any], ...] = ()  # overrides of mnist1d's generator args, sorted pairs
    train_size: int = 0  # 0: the full 4000-signal train set
    imbalance: float = 1.0  # R: classes C/2..C-1 keep 1/R of their samples
    train_classes: int = 0  # k > 0: train and test on classes 0..k-1 only (a k-way network)
    label_noise: float = 0.0  # p: each train label redrawn uniformly over the C classes w.p. p
    # model
    model: str = "cnn1d"
    width: int = 0  # base channels w; 0: the model's own (cnn1d 32, cnn1d-seed 64)
    kernel_size: int = 5
    batch_norm: bool = True
    classifier: str = "learned"  # "etf": W fixed to a simplex ETF (Zhu et al. 2021; models.py)
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int = 100
    schedule: str = "multistep"
    loss: str = "ce"  # "ce", "mse" (one-hot targets), "focal" (ncsim.train.loss_fn)
    label_smoothing: float = 0.0  # alpha of cross-entropy's smoothed target (loss "ce")
    focal_gamma: float = 0.0  # gamma of the focal loss (loss "focal": > 0)
    grad_clip: float = 0.0  # 0: no clipping
    # true: once two evaluations in a row find zero train error, with the training passes between them
    # as clean as the stable TPT requires (ncsim.train.History.in_terminal_phase), the learning rate is 0:
    # the parameters stop moving while the train-mode minibatch passes go on. A terminal phase without
    # training, the physical control of a check that collapse goes on in it.
    freeze_at_tpt: bool = False
    lbfgs_max_iter: int = LBFGS_MAX_ITER_DEFAULT  # LBFGS inner iterations per step (torch's default); lbfgs only
    # batch-norm statistics an evaluation uses: the running averages training left ("running"), or
    # recomputed over the train set at the evaluated weights ("recomputed", precise BN; ncsim.train)
    eval_bn_stats: str = "running"
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" or "bf16-mixed" training passes (PRECISIONS)
    # evaluation: "all", "every:K", "log:K" (K log-spaced epochs), "none"; epoch 0 and the last always
    eval_schedule: str = "all"
    layer_schedule: str = "log:12"

    def __post_init__(self):
        # Coerce here too (not only in from_dict), so that e.g. RunSpec(lr=1) == RunSpec(lr=1.0) also
        # have the same key.
        for f in fields(self):
            if f.name != "data":
                object.__setattr__(self, f.name, _coerce(f.name, f.type, getattr(self, f.name)))
        object.__setattr__(self, "data", _data_pairs(self.data))
        _validate(self)

    # --- dict / TOML round trip -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"] = dict(self.data)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(f"unknown spec key(s) {unknown}; valid keys: {sorted(known)}")
        d = dict(d)
        for f in fields(cls):
            if f.name in d and f.name != "data":
                d[f.name] = _coerce(f.name, f.type, d[f.name])
        return cls(**d)

    def replace(self, **changes) -> RunSpec:
        return RunSpec.from_dict({**self.to_dict(), **changes})

    def with_data(self, **changes) -> RunSpec:
        """The spec with its `data` table updated by `changes` (MNIST-1D generator arguments; a None value
        removes the entry, back to the generator's default), the rest of the table kept."""
        merged = {**dict(self.data), **changes}
        return self.replace(data={k: v for k, v in merged.items() if v is not None})

    # --- identity ----------------------------------------------------------------------------
    def key(self) -> str:
        """Content hash: sha256 of the canonical JSON of every field that shapes the trajectory
        (all fields but `name`) and TRAINER_VERSION; 20 hex digits. A field of HASHED_WHEN_SET enters
        only when it differs from its default, so that adding such a field leaves the keys and records of
        the runs that do not use it."""
        d = self.to_dict()
        d.pop("name")
        for name, default in HASHED_WHEN_SET.items():
            if d[name] == default:
                d.pop(name)
        d["trainer_version"] = TRAINER_VERSION
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:20]

    def label(self) -> str:
        """A readable id for tests and figures: name, seed and, when the spec sets one, the MNIST-1D
        generator seed ("standard-s0", "standard-s3-d3"; as ncsim.suite.RunId.label)."""
        data_seed = dict(self.data).get("seed")
        return f"{self.name}-s{self.seed}" + ("" if data_seed is None else f"-d{data_seed}")


def _coerce(name: str, typ: str, value: Any) -> Any:
    """Accept TOML / command-line values (strings, ints for floats) for typed fields."""
    want = {"int": int, "float": float, "bool": bool, "str": str}.get(str(typ))
    if want is None or isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    try:
        if isinstance(value, bool):  # True is an int to Python, but never a number of epochs or an lr
            raise ValueError
        if want is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            raise ValueError
        if want is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return want(value)
    except (TypeError, ValueError):
        raise SpecError(f"{name}={value!r} is not a valid {want.__name__}") from None


def _data_pairs(data: Any) -> tuple[tuple[str, Any], ...]:
    """The `data` table (a dict or (name, value) pairs) as sorted pairs of coerced, range-checked
    generator arguments; padding becomes a tuple (JSON and TOML write it as a list)."""
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in data):
        items = [tuple(p) for p in data]
    else:
        raise SpecError(f"data={data!r} must be a table of generator arguments ({', '.join(DATA_ARGS)})")
    bad = sorted({str(k) for k, _ in items} - set(DATA_ARGS))
    if bad:
        raise SpecError(f"unknown data key(s) {bad}; valid: {list(DATA_ARGS)}")
    return tuple(sorted((k, _data_value(k, v)) for k, v in dict(items).items()))


def _data_value(key: str, value: Any) -> Any:
    kind, low, high = _DATA_RULES[key]
    name = f"data.{key}"
    if kind == "pair":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise SpecError(f"{name}={value!r} must be a pair [low, high] of integers, 0 <= low <= high <= {high}")
        pair = tuple(_coerce(name, "int", v) for v in value)
        if not low <= pair[0] <= pair[1] <= high:
            raise SpecError(f"{name}={list(pair)!r} must be a pair [low, high] of integers, 0 <= low <= high <= {high}")
        return pair
    value = _coerce(name, kind, value)
    if kind != "bool" and not (math.isfinite(value) and low <= value <= high):
        raise SpecError(f"{name}={value!r} must be in [{low}, {high}]")
    return value


def check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    """SpecError naming `name` and the valid choices unless `value` is one of them."""
    if value not in valid:
        raise SpecError(f"unknown {name} {value!r}; valid choices: {', '.join(valid)}")


def _validate(s: RunSpec) -> None:
    check_choice("model", s.model, MODELS)
    check_choice("optimizer", s.optimizer, OPTIMIZERS)
    check_choice("schedule", s.schedule, SCHEDULES)
    check_choice("loss", s.loss, LOSSES)
    check_choice("eval_bn_stats", s.eval_bn_stats, BN_STATS)
    check_choice("classifier", s.classifier, CLASSIFIERS)
    check_choice("device", s.device, DEVICES)
    check_choice("precision", s.precision, PRECISIONS)
    for f in fields(s):
        if f.type == "float" and not math.isfinite(getattr(s, f.name)):
            raise SpecError(f"{f.name}={getattr(s, f.name)!r} must be finite")
    checks = [
        ("lr", 0 < s.lr <= MAX_LR, f"must be > 0 and <= {MAX_LR:g}"),
        ("epochs", 1 <= s.epochs <= MAX_EPOCHS, f"must be >= 1 and <= {MAX_EPOCHS}"),
        ("batch_size", 1 <= s.batch_size <= MAX_BATCH_SIZE, f"must be >= 1 and <= {MAX_BATCH_SIZE}"),
        ("width", 0 <= s.width <= MAX_WIDTH, f"must be >= 0 (0: the model's default) and <= {MAX_WIDTH}"),
        # Both models' penultimate layer is 4w-D, and the NC metrics need p >= C-1.
        (
            "width",
            s.width == 0 or 4 * s.width >= NUM_CLASSES - 1,
            f"must be 0 (the model's default) or >= {-(-(NUM_CLASSES - 1) // 4)}: the 4w-D penultimate "
            f"layer needs at least C-1 = {NUM_CLASSES - 1} features",
        ),
        (
            "kernel_size",
            1 <= s.kernel_size <= MAX_KERNEL_SIZE and s.kernel_size % 2 == 1,
            f"must be an odd integer >= 1 and <= {MAX_KERNEL_SIZE}",
        ),
        (
            "batch_norm",
            s.model != "cnn1d-seed" or s.batch_norm,
            "cnn1d-seed always has batch norm: batch_norm must be true",
        ),
        ("weight_decay", 0 <= s.weight_decay <= MAX_WEIGHT_DECAY, f"must be >= 0 and <= {MAX_WEIGHT_DECAY:g}"),
        ("momentum", 0 <= s.momentum < 1, "must be in [0, 1)"),
        ("imbalance", s.imbalance >= 1, "must be >= 1 (R = majority/minority size)"),
        ("train_size", 0 <= s.train_size <= MAX_TRAIN_SIZE, f"must be >= 0 (0 = full set) and <= {MAX_TRAIN_SIZE}"),
        ("grad_clip", s.grad_clip >= 0, "must be >= 0"),
        ("seed", 0 <= s.seed <= MAX_SEED, "must be in [0, 2**63 - 1]"),
        ("lbfgs_max_iter", 1 <= s.lbfgs_max_iter <= MAX_LBFGS_ITER, f"must be >= 1 and <= {MAX_LBFGS_ITER}"),
        (
            "lbfgs_max_iter",
            s.optimizer == "lbfgs" or s.lbfgs_max_iter == LBFGS_MAX_ITER_DEFAULT,
            f"is for optimizer='lbfgs' only (leave it at {LBFGS_MAX_ITER_DEFAULT})",
        ),
        (
            "train_classes",
            s.train_classes == 0 or 2 <= s.train_classes < NUM_CLASSES,
            f"must be 0 (all {NUM_CLASSES} classes) or a number of classes in [2, {NUM_CLASSES - 1}]",
        ),
        ("label_noise", 0 <= s.label_noise <= 1, "must be a fraction in [0, 1]"),
        ("label_smoothing", 0 <= s.label_smoothing < 1, "must be in [0, 1)"),
        ("label_smoothing", s.loss == "ce" or s.label_smoothing == 0, "is for loss='ce' only (leave it at 0)"),
        ("focal_gamma", 0 <= s.focal_gamma <= MAX_FOCAL_GAMMA, f"must be >= 0 and <= {MAX_FOCAL_GAMMA:g}"),
        (
            "focal_gamma",
            (s.loss == "focal") == (s.focal_gamma > 0),
            "must be > 0 with loss='focal' (gamma = 0 is cross-entropy) and 0 with any other loss",
        ),
        (
            "eval_bn_stats",
            s.eval_bn_stats == "running" or s.batch_norm,
            "needs batch_norm=true: a network without batch norm has no statistics to recompute",
        ),
    ]
    for name, ok, why in checks:
        if not ok:
            raise SpecError(f"{name}={getattr(s, name)!r} {why}")
    for name in ("eval_schedule", "layer_schedule"):
        value = getattr(s, name)
        if not _SCHEDULE_RE.fullmatch(value) or ":" in value and int(value.partition(":")[2]) > MAX_EPOCHS:
            raise SpecError(f"{name}={value!r}; valid forms: all, none, every:K, log:K with 1 <= K <= {MAX_EPOCHS}")
    if s.freeze_at_tpt and s.optimizer == "lbfgs":
        # LBFGS's strong-Wolfe line search chooses its own step length: a learning rate of 0 does not
        # stop it from moving the parameters.
        raise SpecError(
            "freeze_at_tpt=true needs optimizer 'sgd', 'adam' or 'adamw' (LBFGS's line search sets its own step)"
        )
    if s.nesterov and (s.optimizer != "sgd" or s.momentum == 0):
        raise SpecError("nesterov=true needs optimizer='sgd' and momentum > 0")


def schedule_epochs(schedule: str, epochs: int) -> list[int]:
    """The epochs (0 = initialisation .. epochs) a schedule string selects; 0 and `epochs` always
    included except for "none" (then only 0 and the last, which every run records)."""
    import numpy as np

    kind, _, k = schedule.partition(":")
    if kind == "all":
        chosen = set(range(epochs + 1))
    elif kind == "every":
        chosen = set(range(0, epochs + 1, int(k)))
    elif kind == "log":
        chosen = set(np.unique(np.round(np.geomspace(1, epochs, int(k))).astype(int)).tolist())
    else:
        chosen = set()
    return sorted(chosen | {0, epochs})


# --- presets and files ------------------------------------------------------------------------
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def _read_toml(source: str | Path) -> tuple[Path, dict]:
    path = Path(source)
    if path.suffix and not path.is_file():
        raise SpecError(f"no such spec file {str(source)!r}; presets are named without .toml: {', '.join(presets())}")
    if not path.suffix:
        if str(source) not in presets():
            raise SpecError(f"unknown preset {source!r}; valid presets: {', '.join(presets())}")
        path = PRESETS_DIR / f"{source}.toml"
    try:
        # A byte-order mark, which some Windows editors write, is no part of the TOML text.
        text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: invalid TOML: not UTF-8 text ({e})") from None
    except OSError as e:
        raise SpecError(f"cannot read spec file {str(path)!r}: {e.strerror or e}") from None
    if not doc:
        raise SpecError(
            f"{path}: empty spec (no key set): it would train RunSpec's generic defaults, not a "
            f'run you described; start from a preset with base = "standard", or set the keys'
        )
    return path, doc


def seedless_key(spec: RunSpec) -> str:
    """The key of `spec` without its training seed and MNIST-1D generator seed: one value for every run
    of a configuration, whatever seeds it is run on."""
    return spec.replace(seed=0, data={k: v for k, v in spec.data if k != "seed"}).key()


def distinct_name(spec: RunSpec, run: RunSpec) -> RunSpec:
    """`spec`, which bears the name of the (preset) run `run`, under a name that does not pass it off as
    that run: unchanged when it is `run` up to its seeds, else named "<name>-<first 6 hex digits of its
    seedless key>" (e.g. "standard-3fa2c1", whose label is "standard-3fa2c1-s0")."""
    if seedless_key(spec) == seedless_key(run):
        return spec
    return spec.replace(name=f"{spec.name}-{seedless_key(spec)[:6]}")


def _resolve_base(doc: dict, seen: tuple[str, ...] = ()) -> dict:
    """A document's top-level spec keys, on top of those of the preset its `base` key names."""
    base = doc.pop("base", None)
    if base is None:
        return doc
    if not isinstance(base, str):
        raise SpecError(f"base={base!r} must be a preset name (a string); valid presets: {', '.join(presets())}")
    if base in seen:
        raise SpecError(f"preset base cycle: {' -> '.join(seen + (base,))}")
    _, base_doc = _read_toml(base)
    base_doc.pop("runs", None)
    base_doc.pop("seeds", None)
    return {**_resolve_base(base_doc, seen + (base,)), **doc}


def _base_run(doc: dict) -> RunSpec | None:
    """The run of the preset a document's `base` key names (its top-level keys), None without one."""
    return None if "base" not in doc else RunSpec.from_dict(_resolve_base({"base": doc["base"]}))


def load_specs(source: str | Path, overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    """The runs a preset name or TOML file describes. A file holds top-level spec keys (the base),
    optionally `base = "<preset>"` to start from another preset's top-level keys, and optionally
    [[runs]] tables, each a set of overrides of the base; `seeds = [..]` at top level repeats every
    run per seed. `overrides` (e.g. from --set) apply last, to every run. A run that takes its name
    from its base preset but changes the preset's run is not that run: it is named apart from it
    (distinct_name), so that its label never reads as the preset's own."""
    path, doc = _read_toml(source)
    try:
        runs = doc.pop("runs", [{}])
        seeds = doc.pop("seeds", None)
        if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
            raise SpecError(f"runs={runs!r} must be a non-empty array of tables ([[runs]])")
        if seeds is not None and (not isinstance(seeds, list) or not seeds):
            raise SpecError(f"seeds={seeds!r} must be a non-empty array of integers")
        named = "name" in doc or "name" in (overrides or {})
        base = None if named else _base_run(doc)
        doc = _resolve_base(doc)
        specs = []
        for run in runs:
            for seed in seeds if seeds is not None else [None]:
                spec = RunSpec.from_dict(
                    {**doc, **run, **({"seed": seed} if seed is not None else {}), **(overrides or {})}
                )
                specs.append(spec if base is None or "name" in run else distinct_name(spec, base))
        return specs
    except SpecError as e:
        raise SpecError(f"{path.name}: {e}") from None


def to_toml(spec: RunSpec) -> str:
    import tomli_w

    return tomli_w.dumps(spec.to_dict())
