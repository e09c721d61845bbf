"""Tests for ncsim.spec: RunSpec round trips, the content key, validation, coercion, schedules, presets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncsim import spec as spec_mod
from ncsim import suite
from ncsim.spec import (
    DATA_ARGS,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    SCHEDULES,
    RunSpec,
    SpecError,
    load_specs,
    presets,
    schedule_epochs,
    to_toml,
)

pytestmark = pytest.mark.usefixtures("no_home_cache")

# The key of RunSpec() (its fields and TRAINER_VERSION). If this changes, every stored record stops
# matching: change it only together with a deliberate TRAINER_VERSION bump or hashing change.
DEFAULT_KEY = "86272f0f3cdfe2d53aba"

# A valid non-default value for every field but `name` (each one alone changes the trajectory).
ALTERNATIVES = {
    "data": {"seed": 7},
    "train_size": 400,
    "imbalance": 2.0,
    "model": "cnn1d-seed",
    "width": 16,
    "kernel_size": 3,
    "batch_norm": False,
    "optimizer": "adam",
    "lr": 0.2,
    "momentum": 0.5,
    "nesterov": True,
    "weight_decay": 0.0,
    "batch_size": 64,
    "epochs": 5,
    "schedule": "cosine",
    "loss": "mse",
    "grad_clip": 1.0,
    "seed": 1,
    "device": "cuda",
    "eval_schedule": "every:2",
    "layer_schedule": "none",
    "lbfgs_max_iter": 5,
    "eval_bn_stats": "recomputed",
    "classifier": "etf",
    "train_classes": 5,
    "label_noise": 0.2,
    "label_smoothing": 0.1,
    "focal_gamma": 2.0,
    "precision": "bf16-mixed",
    "freeze_at_tpt": True,
}
# Fields valid only together with another value: the base each is changed from.
NEEDS = {
    "lbfgs_max_iter": {"optimizer": "lbfgs", "nesterov": False},
    "label_smoothing": {"loss": "ce", "focal_gamma": 0.0},
    "focal_gamma": {"loss": "focal", "focal_gamma": 1.0, "label_smoothing": 0.0},
    "freeze_at_tpt": {"optimizer": "sgd", "lbfgs_max_iter": spec_mod.LBFGS_MAX_ITER_DEFAULT},
}

FIELD_NAMES = [f.name for f in dataclasses.fields(RunSpec)]


def write(path, text: str):
    path.write_text(text)
    return path


# The loss and its parameters, always a valid combination: label smoothing only with "ce", a focal
# gamma exactly with "focal".
loss_fields = st.one_of(
    st.just({"loss": "mse"}),
    st.builds(lambda a: {"loss": "ce", "label_smoothing": a}, st.sampled_from([0.0, 0.1, 0.5])),
    st.builds(lambda g: {"loss": "focal", "focal_gamma": g}, st.sampled_from([0.5, 2.0, spec_mod.MAX_FOCAL_GAMMA])),
)

# Random valid specs for the property tests (a few fields; the rest stay at their defaults).
specs_strategy = st.builds(
    lambda loss, **fields: RunSpec(**loss, **fields),
    loss=loss_fields,
    train_classes=st.sampled_from([0, 2, 5, 9]),
    label_noise=st.sampled_from([0.0, 0.1, 1.0]),
    name=st.sampled_from(["run", "a", "b-c"]),
    lr=st.floats(min_value=1e-6, max_value=10.0, allow_nan=False),
    epochs=st.integers(min_value=1, max_value=500),
    optimizer=st.sampled_from(["sgd", "adam", "adamw", "lbfgs"]),
    schedule=st.sampled_from(SCHEDULES),
    kernel_size=st.sampled_from([1, 3, 5, 7]),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    train_size=st.integers(min_value=0, max_value=4000),
    eval_schedule=st.sampled_from(["all", "none", "every:3", "log:10"]),
)


# --- round trips ----------------------------------------------------------------------------------


def test_dict_round_trip_of_default_spec():
    s = RunSpec()
    assert RunSpec.from_dict(s.to_dict()) == s
    assert RunSpec.from_dict(s.to_dict()).to_dict() == s.to_dict()


def test_to_dict_gives_data_as_a_plain_dict():
    s = RunSpec.from_dict({"data": {"seed": 3, "iid_noise_scale": 0.05}})
    d = s.to_dict()
    assert d["data"] == {"iid_noise_scale": 0.05, "seed": 3}
    assert set(d) == set(FIELD_NAMES)


def test_toml_round_trip_through_a_written_file(tmp_path):
    s = RunSpec.from_dict(
        {
            "name": "x",
            "data": {"seed": 3},
            "lr": 0.0125,
            "epochs": 7,
            "optimizer": "adamw",
            "batch_norm": False,
            "weight_decay": 0.0,
            "layer_schedule": "every:3",
        }
    )
    path = write(tmp_path / "x.toml", to_toml(s))
    assert load_specs(path) == [s]
    assert load_specs(path)[0].key() == s.key()


@settings(max_examples=40, deadline=None)
@given(specs_strategy)
def test_random_specs_survive_dict_and_toml_round_trips(s):
    assert RunSpec.from_dict(s.to_dict()) == s
    back = RunSpec.from_dict(tomllib.loads(to_toml(s)))
    assert back == s and back.key() == s.key()


def test_replace_changes_one_field_and_validates():
    s = RunSpec().replace(lr="0.5", name="other")
    assert (s.lr, s.name) == (0.5, "other")
    assert s.replace() == s
    with pytest.raises(SpecError, match="lr"):
        s.replace(lr=0)


def test_label_is_name_and_seed():
    assert RunSpec(name="standard", seed=3).label() == "standard-s3"


def test_label_names_a_data_seed_when_the_spec_sets_one():
    assert RunSpec(name="standard", seed=3, data={"seed": 3}).label() == "standard-s3-d3"


def test_a_run_that_changes_its_base_preset_is_not_labelled_as_the_presets_run(tmp_path):
    path = write(tmp_path / "mine.toml", 'base = "standard"\nepochs = 3\nseeds = [0, 1]\n')
    specs = load_specs(path)
    short = spec_mod.seedless_key(specs[0])[:6]
    assert [s.label() for s in specs] == [f"standard-{short}-s0", f"standard-{short}-s1"]
    assert specs[0].label() != suite.config("standard", 0).label() and re.fullmatch(r"[0-9a-f]{6}", short)
    assert specs[0] == load_specs("standard")[0].replace(name=f"standard-{short}", epochs=3)


def test_the_name_apart_differs_between_changes_and_not_between_seeds(tmp_path):
    one = load_specs(write(tmp_path / "a.toml", 'base = "standard"\nepochs = 3\n'))[0]
    other = load_specs(write(tmp_path / "b.toml", 'base = "standard"\nepochs = 4\n'))[0]
    assert one.name != other.name
    assert (
        spec_mod.distinct_name(one.replace(name="standard", seed=5, data={"seed": 5}), load_specs("standard")[0]).name
        == one.name
    )


def test_a_run_equal_to_its_base_preset_or_named_keeps_its_name(tmp_path):
    (same,) = load_specs(write(tmp_path / "same.toml", 'base = "standard"\nseed = 4\n'))
    assert same.label() == "standard-s4" and same == suite.config("standard", 4)
    (named,) = load_specs(write(tmp_path / "named.toml", 'base = "standard"\nname = "mine"\nepochs = 3\n'))
    assert named.label() == "mine-s0"
    # the presets' own runs keep theirs; with --set overrides a run is named apart where it is obtained
    # (ncsim.suite.named_apart), not here
    assert [s.name for s in load_specs("optimizers")] == ["sgd", "adam", "adamw", "lbfgs"]
    assert load_specs("standard", {"epochs": 2})[0].label() == "standard-s0"


# --- the key --------------------------------------------------------------------------------------


def test_default_key_is_pinned():
    assert RunSpec().key() == DEFAULT_KEY


def test_key_is_20_lowercase_hex_digits():
    assert re.fullmatch(r"[0-9a-f]{20}", RunSpec(lr=0.3, seed=5).key())


def test_key_ignores_name():
    assert RunSpec(name="a").key() == RunSpec(name="b").key() == DEFAULT_KEY


def test_alternatives_cover_every_field_but_name():
    # Guards the next test: a new RunSpec field must get an alternative value here.
    assert set(ALTERNATIVES) == set(FIELD_NAMES) - {"name"}


@pytest.mark.parametrize("field", sorted(ALTERNATIVES))
def test_key_changes_with_each_field(field):
    base = RunSpec(**NEEDS.get(field, {}))
    changed = base.replace(**{field: ALTERNATIVES[field]})
    assert changed != base
    assert changed.key() not in (DEFAULT_KEY, base.key())


def test_a_field_added_within_version_4_leaves_the_keys_of_specs_that_do_not_set_it():
    # HASHED_WHEN_SET: at its default the field is not hashed, so the specs that leave it there keep their keys.
    for name, default in spec_mod.HASHED_WHEN_SET.items():
        assert getattr(RunSpec(), name) == default
    d = RunSpec().to_dict()
    d.pop("name")
    for name in spec_mod.HASHED_WHEN_SET:
        d.pop(name)
    d["trainer_version"] = spec_mod.TRAINER_VERSION
    blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(blob).hexdigest()[:20] == DEFAULT_KEY == RunSpec().key()


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"eval_bn_stats": "precise"}, r"unknown eval_bn_stats 'precise'; valid choices: running, recomputed"),
        ({"eval_bn_stats": "recomputed", "batch_norm": False}, r"eval_bn_stats='recomputed' needs batch_norm=true"),
        ({"classifier": "fixed"}, r"unknown classifier 'fixed'; valid choices: learned, etf"),
        ({"precision": "bf16"}, r"unknown precision 'bf16'; valid choices: fp32, bf16-mixed"),
    ],
)
def test_fields_added_within_version_4_are_validated(changes, fragment):
    with pytest.raises(SpecError, match=fragment):
        RunSpec(**changes)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"train_classes": 1}, r"^train_classes=1 must be 0 \(all 10 classes\) or a number of classes in \[2, 9\]"),
        ({"train_classes": 10}, r"^train_classes=10 must be 0"),
        ({"train_classes": -1}, r"^train_classes=-1 must be 0"),
        ({"label_noise": -0.1}, r"^label_noise=-0\.1 must be a fraction in \[0, 1\]"),
        ({"label_noise": 1.5}, r"^label_noise=1\.5 must be a fraction"),
        ({"label_noise": float("nan")}, r"^label_noise=nan must be finite"),
        ({"label_smoothing": 1.0}, r"^label_smoothing=1\.0 must be in \[0, 1\)"),
        ({"label_smoothing": -0.1}, r"^label_smoothing=-0\.1 must be in \[0, 1\)"),
        ({"label_smoothing": 0.1, "loss": "mse"}, r"^label_smoothing=0\.1 is for loss='ce' only"),
        ({"label_smoothing": 0.1, "loss": "focal", "focal_gamma": 2.0}, r"^label_smoothing=0\.1 is for loss='ce' only"),
        ({"loss": "focal"}, r"^focal_gamma=0\.0 must be > 0 with loss='focal'"),
        ({"focal_gamma": 2.0}, r"^focal_gamma=2\.0 must be > 0 with loss='focal' .* and 0 with any other loss"),
        ({"focal_gamma": 2.0, "loss": "mse"}, r"^focal_gamma=2\.0 must be > 0 with loss='focal'"),
        ({"focal_gamma": -1.0, "loss": "focal"}, r"^focal_gamma=-1\.0 must be >= 0 and <= 10"),
        ({"focal_gamma": 10.5, "loss": "focal"}, r"^focal_gamma=10\.5 must be >= 0 and <= 10"),
        ({"focal_gamma": float("inf"), "loss": "focal"}, r"^focal_gamma=inf must be finite"),
    ],
)
def test_invalid_new_loss_and_data_fields_are_spec_errors_naming_the_field(changes, fragment):
    with pytest.raises(SpecError, match=fragment):
        RunSpec(**changes)
    with pytest.raises(SpecError, match=fragment):  # from a TOML / dict table too
        RunSpec.from_dict(changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"train_classes": 2},
        {"train_classes": 9},
        {"label_noise": 1.0},
        {"label_noise": 0.0},
        {"label_smoothing": 0.999},
        {"loss": "focal", "focal_gamma": spec_mod.MAX_FOCAL_GAMMA},
        {"loss": "focal", "focal_gamma": 1e-6},
    ],
)
def test_new_fields_accept_the_ends_of_their_ranges(changes):
    s = RunSpec(**changes)
    assert {k: getattr(s, k) for k in changes} == changes


def test_new_fields_given_at_their_defaults_keep_the_default_key():
    explicit = RunSpec(train_classes=0, label_noise=0.0, label_smoothing=0.0, focal_gamma=0.0)
    assert explicit == RunSpec() and explicit.key() == DEFAULT_KEY
    assert RunSpec.from_dict({"train_classes": "0", "label_noise": 0, "label_smoothing": "0.0"}).key() == DEFAULT_KEY


@pytest.mark.parametrize(
    "changes",
    [
        {"train_classes": 5},
        {"label_noise": 0.3},
        {"label_smoothing": 0.1},
        {"loss": "focal", "focal_gamma": 2.0},
    ],
    ids=lambda c: "-".join(c),
)
def test_setting_a_new_field_changes_the_key_and_its_value_is_hashed(changes):
    s = RunSpec(**changes)
    assert s.key() != DEFAULT_KEY
    (name,) = [k for k in changes if k != "loss"]
    other = {"train_classes": 6, "label_noise": 0.4, "label_smoothing": 0.2, "focal_gamma": 3.0}[name]
    assert s.replace(**{name: other}).key() not in (DEFAULT_KEY, s.key())


def test_focal_loss_keys_differ_from_cross_entropy_and_mse():
    keys = {RunSpec(loss="ce").key(), RunSpec(loss="mse").key(), RunSpec(loss="focal", focal_gamma=1.0).key()}
    assert len(keys) == 3


def test_new_fields_survive_dict_and_toml_round_trips(tmp_path):
    for changes in (
        {"train_classes": 3, "label_noise": 0.25, "loss": "focal", "focal_gamma": 1.5},
        {"train_classes": 9, "label_noise": 1.0, "label_smoothing": 0.05},
    ):
        s = RunSpec(name="x", **changes)
        d = s.to_dict()
        assert {k: d[k] for k in changes} == changes
        assert RunSpec.from_dict(d) == s
        back = RunSpec.from_dict(tomllib.loads(to_toml(s)))
        assert back == s and back.key() == s.key()
        assert load_specs(write(tmp_path / "x.toml", to_toml(s))) == [s]


def test_new_fields_are_read_from_a_spec_file_and_coerced(tmp_path):
    path = write(
        tmp_path / "noisy.toml",
        'train_classes = 5\nlabel_noise = 0\nloss = "focal"\nfocal_gamma = 2\n'
        '[[runs]]\nlabel_noise = 0.2\n[[runs]]\nlabel_noise = "0.4"\n',
    )
    specs = load_specs(path)
    assert [(s.train_classes, s.label_noise, s.loss, s.focal_gamma) for s in specs] == [
        (5, 0.2, "focal", 2.0),
        (5, 0.4, "focal", 2.0),
    ]
    assert isinstance(specs[0].focal_gamma, float) and specs[0].key() != specs[1].key()


def test_key_changes_with_trainer_version(monkeypatch):
    monkeypatch.setattr(spec_mod, "TRAINER_VERSION", spec_mod.TRAINER_VERSION + 1)
    assert RunSpec().key() != DEFAULT_KEY


def test_key_ignores_the_order_of_data_overrides():
    a = RunSpec.from_dict({"data": {"seed": 1, "shear_scale": 0.5}})
    b = RunSpec.from_dict({"data": {"shear_scale": 0.5, "seed": 1}})
    assert a == b and a.key() == b.key()


def test_equal_specs_built_with_int_or_float_have_equal_keys():
    # A float field given an int in Python (not via from_dict) must hash like the float.
    assert RunSpec(lr=1) == RunSpec(lr=1.0)
    assert RunSpec(lr=1).key() == RunSpec(lr=1.0).key()
    assert RunSpec(weight_decay=0).key() == RunSpec(weight_decay=0.0).key()


@settings(max_examples=60, deadline=None)
@given(specs_strategy, specs_strategy)
def test_keys_are_equal_exactly_when_all_fields_but_name_are(a, b):
    same = {k: v for k, v in a.to_dict().items() if k != "name"} == {
        k: v for k, v in b.to_dict().items() if k != "name"
    }
    assert (a.key() == b.key()) == same


@settings(max_examples=30, deadline=None)
@given(specs_strategy, st.sampled_from(sorted(ALTERNATIVES)))
def test_changing_any_field_of_a_random_spec_changes_its_key(s, field):
    alt = ALTERNATIVES[field]
    if field == "data":
        alt = {"seed": 1 + dict(s.data).get("seed", 42)}
    changes = {field: alt}
    if field == "nesterov":
        changes["optimizer"] = "sgd"
    if field == "model":
        changes["batch_norm"] = True
    if field == "loss":  # a loss other than the spec's, without the parameters of its own
        changes = {"loss": "mse" if s.loss != "mse" else "ce", "label_smoothing": 0.0, "focal_gamma": 0.0}
    s = s.replace(**NEEDS.get(field, {}))
    t = s.replace(**changes)
    if getattr(t, field) == getattr(s, field):  # the random spec already had the alternative
        t = s.replace(**{field: getattr(RunSpec(), field)} if field != "data" else {"data": {}})
    assert t.to_dict()[field] != s.to_dict()[field]
    assert t.key() != s.key()


# --- validation -----------------------------------------------------------------------------------


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_unknown_key_is_named_and_valid_keys_listed():
    with pytest.raises(SpecError) as e:
        RunSpec.from_dict({"lr": 0.1, "bogus": 1})
    msg = str(e.value)
    assert "bogus" in msg and "valid keys" in msg
    for name in FIELD_NAMES:
        assert name in msg


def test_unknown_data_key_is_named_and_generator_args_listed():
    with pytest.raises(SpecError) as e:
        RunSpec.from_dict({"data": {"num_samples": 10}})
    assert "num_samples" in str(e.value)
    for arg in DATA_ARGS:
        assert arg in str(e.value)


@pytest.mark.parametrize(
    "field, bad, choices",
    [
        ("optimizer", "adamx", OPTIMIZERS),
        ("model", "resnet", MODELS),
        ("loss", "hinge", LOSSES),
        ("schedule", "step", SCHEDULES),
        ("device", "tpu", ("cpu", "cuda")),
    ],
)
def test_unknown_choice_is_named_and_choices_listed(field, bad, choices):
    with pytest.raises(SpecError) as e:
        RunSpec.from_dict({field: bad})
    msg = str(e.value)
    assert field in msg and repr(bad) in msg
    for choice in choices:
        assert choice in msg


@pytest.mark.parametrize(
    "field, bad",
    [
        ("lr", 0.0),
        ("lr", -0.1),
        ("epochs", 0),
        ("epochs", -3),
        ("kernel_size", 4),
        ("kernel_size", 0),
        ("batch_size", 0),
        ("width", -1),
        ("weight_decay", -1e-4),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("imbalance", 0.5),
        ("train_size", -1),
        ("grad_clip", -1.0),
        # non-finite floats and the upper bounds (beyond them: MemoryError, overflow or a hang)
        ("lr", float("inf")),
        ("lr", float("nan")),
        ("lr", 11.0),
        ("weight_decay", float("inf")),
        ("weight_decay", 1e308),
        ("weight_decay", 1.5),
        ("grad_clip", float("inf")),
        ("imbalance", float("inf")),
        ("momentum", float("nan")),
        ("seed", -1),
        ("seed", 2**63),
        ("seed", 2**70),
        ("width", 1025),
        ("epochs", 100_001),
        ("batch_size", 10**7),
        ("kernel_size", 101),
        ("train_size", 10**7),
    ],
)
def test_out_of_range_value_is_a_spec_error_naming_the_field(field, bad):
    with pytest.raises(SpecError, match=rf"^{field}="):
        RunSpec(**{field: bad})


@pytest.mark.parametrize(
    "optimizer, max_iter, fragment",
    [("lbfgs", 0, "must be >= 1"), ("lbfgs", 1001, "<= 1000"), ("sgd", 5, "for optimizer='lbfgs' only")],
)
def test_lbfgs_inner_iterations_are_bounded_and_for_lbfgs_only(optimizer, max_iter, fragment):
    with pytest.raises(SpecError, match=rf"^lbfgs_max_iter={max_iter} .*{fragment}"):
        RunSpec(optimizer=optimizer, lbfgs_max_iter=max_iter)
    assert RunSpec(optimizer="lbfgs", lbfgs_max_iter=1).lbfgs_max_iter == 1


def test_upper_bounds_are_valid():
    top = RunSpec(
        seed=spec_mod.MAX_SEED,
        lr=spec_mod.MAX_LR,
        weight_decay=spec_mod.MAX_WEIGHT_DECAY,
        width=spec_mod.MAX_WIDTH,
        epochs=spec_mod.MAX_EPOCHS,
        batch_size=spec_mod.MAX_BATCH_SIZE,
        eval_schedule=f"every:{spec_mod.MAX_EPOCHS}",
        layer_schedule=f"log:{spec_mod.MAX_EPOCHS}",
    )
    assert RunSpec.from_dict(top.to_dict()) == top


@pytest.mark.parametrize("width", [1, 2])
def test_width_too_narrow_for_the_penultimate_metrics_is_rejected(width):
    # The 4w-D penultimate layer must have at least C-1 = 9 features for NC1-NC4.
    with pytest.raises(SpecError, match=rf"^width={width} .*C-1 = 9"):
        RunSpec(width=width)


@pytest.mark.parametrize("width", [0, 3, 8])
def test_default_and_narrow_but_sufficient_widths_are_valid(width):
    assert RunSpec(width=width).width == width


def test_width_check_reads_c_from_the_data_module(monkeypatch):
    from ncsim import data

    assert data.NUM_CLASSES is spec_mod.NUM_CLASSES  # the data module's C is the spec's one definition
    monkeypatch.setattr(spec_mod, "NUM_CLASSES", 20)
    with pytest.raises(SpecError, match=r"^width=4 .*>= 5.*C-1 = 19"):
        RunSpec(width=4)
    assert RunSpec(width=5).width == 5


def test_validating_a_spec_does_not_import_the_data_module():
    """spec sits below data (data imports spec, never the other way): validating every field, the class
    bounds included, leaves ncsim.data unimported."""
    code = (
        "import sys; from ncsim.spec import RunSpec; RunSpec(width=3, train_classes=5); "
        "print('ncsim.data' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- the [data] table -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [3, "seed", [1, 2], None])
def test_data_that_is_not_a_table_is_a_spec_error(bad):
    with pytest.raises(SpecError, match=r"^data=.* must be a table of generator arguments"):
        RunSpec.from_dict({"data": bad})


@pytest.mark.parametrize(
    "key, bad",
    [
        ("template_len", 10_000_000),
        ("template_len", 1),
        ("template_len", 2.5),
        ("template_len", True),
        ("padding", [-1, 3]),
        ("padding", [5, 2]),
        ("padding", [1]),
        ("padding", [1, 2, 3]),
        ("padding", "36,60"),
        ("padding", [0, 1001]),
        ("padding", [1.5, 2]),
        ("scale_coeff", 1e308),
        ("scale_coeff", 2.0),
        ("scale_coeff", -0.1),
        ("scale_coeff", float("nan")),
        ("max_translation", 0),
        ("max_translation", 10**6),
        ("corr_noise_scale", -1.0),
        ("corr_noise_scale", float("inf")),
        ("iid_noise_scale", 1e308),
        ("shear_scale", float("nan")),
        ("shear_scale", -0.5),
        ("shuffle_seq", "maybe"),
        ("shuffle_seq", 2),
        ("final_seq_length", 3),
        ("final_seq_length", 1001),
        ("seed", -1),
        ("seed", 2**32),
        ("seed", "x"),
    ],
)
def test_bad_data_value_is_a_spec_error_naming_the_key(key, bad):
    with pytest.raises(SpecError, match=rf"^data\.{key}="):
        RunSpec.from_dict({"data": {key: bad}})


def test_mnist1d_defaults_are_valid_data_values():
    from mnist1d.data import get_dataset_args

    defaults = {k: v for k, v in get_dataset_args(as_dict=True).items() if k in DATA_ARGS}
    assert set(defaults) == set(DATA_ARGS)
    assert RunSpec(data=defaults).to_dict()["data"] == {**defaults, "padding": tuple(defaults["padding"])}


def test_data_values_are_coerced_like_top_level_fields():
    a = RunSpec(data={"scale_coeff": 1, "padding": [3, 4]})
    b = RunSpec.from_dict({"data": {"scale_coeff": "1.0", "padding": (3, 4)}})
    assert a == b and a.key() == b.key() and hash(a) == hash(b)
    assert RunSpec.from_dict(tomllib.loads(to_toml(a))) == a


@pytest.mark.parametrize("field", ["eval_schedule", "layer_schedule"])
@pytest.mark.parametrize(
    "bad",
    [
        "every:0",
        "log:0",
        "every",
        "every:",
        "log:-2",
        "every:2.5",
        "sometimes",
        "ALL",
        " all",
        "all\n",
        "every:3\n",
        "",
    ],
)
def test_bad_schedule_string_is_a_spec_error_listing_the_forms(field, bad):
    with pytest.raises(SpecError) as e:
        RunSpec(**{field: bad})
    assert field in str(e.value)
    assert "every:K" in str(e.value) and "log:K" in str(e.value)


@pytest.mark.parametrize("bad", [f"every:{spec_mod.MAX_EPOCHS + 1}", "log:100000000000000000000"])
def test_schedule_k_is_bounded(bad):
    with pytest.raises(SpecError, match=rf"eval_schedule='{bad}'.*K <= {spec_mod.MAX_EPOCHS}"):
        RunSpec(eval_schedule=bad)


@pytest.mark.parametrize("good", ["all", "none", "every:1", "every:25", "log:1", "log:50"])
def test_valid_schedule_strings_are_accepted(good):
    assert RunSpec(eval_schedule=good, layer_schedule=good).eval_schedule == good


def test_seed_model_without_batch_norm_is_rejected():
    with pytest.raises(SpecError, match="batch_norm"):
        RunSpec(model="cnn1d-seed", batch_norm=False)


@pytest.mark.parametrize("changes", [{"optimizer": "adam"}, {"momentum": 0.0}])
def test_nesterov_needs_sgd_with_momentum(changes):
    # torch.optim.SGD refuses nesterov without momentum: that must be caught before training.
    with pytest.raises(SpecError, match="nesterov"):
        RunSpec(nesterov=True, **changes)


def test_nesterov_with_sgd_and_momentum_is_valid():
    assert RunSpec(nesterov=True, optimizer="sgd", momentum=0.9).nesterov is True


# --- coercion (TOML / command-line values) ---------------------------------------------------------


def test_string_float_is_coerced():
    s = RunSpec.from_dict({"lr": "0.1", "weight_decay": "5e-4"})
    assert (s.lr, s.weight_decay) == (0.1, 5e-4)
    assert type(s.lr) is float


def test_int_for_a_float_field_becomes_a_float():
    s = RunSpec.from_dict({"lr": 2, "grad_clip": 1})
    assert (s.lr, s.grad_clip) == (2.0, 1.0)
    assert type(s.lr) is float and type(s.grad_clip) is float
    assert type(RunSpec(lr=2).lr) is float


@pytest.mark.parametrize("raw, value", [("3", 3), (3.0, 3), (7, 7)])
def test_int_field_accepts_integral_values(raw, value):
    s = RunSpec.from_dict({"epochs": raw})
    assert s.epochs == value and type(s.epochs) is int


@pytest.mark.parametrize("raw", [2.5, "two", "2.0", None, [2]])
def test_int_field_rejects_non_integral_values(raw):
    with pytest.raises(SpecError, match="epochs"):
        RunSpec.from_dict({"epochs": raw})


@pytest.mark.parametrize(
    "raw, value",
    [
        ("true", True),
        ("True", True),
        ("false", False),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        (True, True),
        (False, False),
    ],
)
def test_bool_field_accepts_true_false_strings(raw, value):
    assert RunSpec.from_dict({"batch_norm": raw}).batch_norm is value


@pytest.mark.parametrize("raw", ["yes", "", 1, 0.0])
def test_bool_field_rejects_other_values(raw):
    with pytest.raises(SpecError, match="batch_norm"):
        RunSpec.from_dict({"batch_norm": raw})


@pytest.mark.parametrize("field", ["epochs", "lr", "seed"])
def test_a_bool_is_not_a_number(field):
    # `--set epochs=true` must not silently mean epochs=1.
    with pytest.raises(SpecError, match=field):
        RunSpec.from_dict({field: True})


def test_unparseable_float_is_a_spec_error():
    with pytest.raises(SpecError, match="lr='fast' is not a valid float"):
        RunSpec.from_dict({"lr": "fast"})


# --- schedule_epochs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, epochs, expected",
    [
        ("all", 5, [0, 1, 2, 3, 4, 5]),
        ("every:2", 5, [0, 2, 4, 5]),
        ("every:5", 10, [0, 5, 10]),
        ("every:50", 10, [0, 10]),
        ("none", 7, [0, 7]),
        ("log:1", 9, [0, 1, 9]),
        ("log:4", 1000, [0, 1, 10, 100, 1000]),
        ("log:5", 10, [0, 1, 2, 3, 6, 10]),
        ("all", 1, [0, 1]),
        ("log:12", 1, [0, 1]),
        ("none", 1, [0, 1]),
    ],
)
def test_schedule_epochs_examples(schedule, epochs, expected):
    assert schedule_epochs(schedule, epochs) == expected


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["all", "none", "every", "log"]), st.integers(1, 60), st.integers(1, 400))
def test_schedule_epochs_are_sorted_in_range_and_include_first_and_last(kind, k, epochs):
    schedule = kind if kind in ("all", "none") else f"{kind}:{k}"
    got = schedule_epochs(schedule, epochs)
    assert got == sorted(set(got))
    assert got[0] == 0 and got[-1] == epochs
    assert all(isinstance(e, int) for e in got)
    if kind == "all":
        assert got == list(range(epochs + 1))
    elif kind == "none":
        assert got == [0, epochs]
    elif kind == "every":
        assert got == sorted(set(range(0, epochs + 1, k)) | {epochs})
    else:  # log:K: K log-spaced epochs from 1 to `epochs` (rounding may merge some), plus 0
        assert 1 in got
        assert len(got) <= (k + 1 if k >= 2 else 3)  # log:1 is epoch 1, plus 0 and the last


# --- presets and files ----------------------------------------------------------------------------


def test_presets_lists_the_shipped_files():
    assert set(suite.PRESETS) <= set(presets())
    assert presets() == sorted(p.stem for p in spec_mod.PRESETS_DIR.glob("*.toml"))


@pytest.mark.parametrize("preset", presets())
def test_every_shipped_preset_loads(preset):
    specs = load_specs(preset)
    assert specs and all(isinstance(s, RunSpec) for s in specs)
    assert len({s.name for s in specs}) == len(specs)  # names tell the runs of a preset apart


def test_standard_preset_is_the_documented_default_regime():
    (s,) = load_specs("standard")
    assert (s.name, s.model, s.width, s.optimizer, s.lr, s.weight_decay, s.epochs, s.schedule) == (
        "standard",
        "cnn1d-seed",
        32,
        "sgd",
        0.05,
        5e-3,
        100,
        "cosine",
    )


def test_runs_of_a_preset_inherit_its_base():
    (standard,) = load_specs("standard")
    no_wd, mse, etf = load_specs("ablation")
    assert no_wd == standard.replace(name="no-wd", weight_decay=0.0)
    assert mse == standard.replace(name="mse", loss="mse")
    assert etf == standard.replace(name="etf-classifier", classifier="etf")


def test_base_key_in_a_user_file(tmp_path):
    path = write(tmp_path / "mine.toml", 'base = "standard"\nname = "mine"\nlr = 0.01\n')
    (s,) = load_specs(path)
    assert s == load_specs("standard")[0].replace(name="mine", lr=0.01)


def test_base_runs_and_seeds_are_not_inherited(tmp_path):
    # optimizers.toml has three [[runs]]; a file based on it takes only its top-level keys.
    path = write(tmp_path / "b.toml", 'base = "optimizers"\nname = "b"\n')
    (s,) = load_specs(path)
    assert s == load_specs("standard")[0].replace(name="b")


def test_base_cycle_is_reported(tmp_path, monkeypatch):
    write(tmp_path / "a.toml", 'base = "b"\nlr = 0.1\n')
    write(tmp_path / "b.toml", 'base = "a"\nepochs = 3\n')
    monkeypatch.setattr(spec_mod, "PRESETS_DIR", tmp_path)
    with pytest.raises(SpecError, match=r"cycle: b -> a -> b"):
        load_specs("a")


def test_self_base_is_a_cycle(tmp_path, monkeypatch):
    write(tmp_path / "loop.toml", 'base = "loop"\n')
    monkeypatch.setattr(spec_mod, "PRESETS_DIR", tmp_path)
    with pytest.raises(SpecError, match="cycle"):
        load_specs("loop")


def test_unknown_preset_lists_the_presets():
    with pytest.raises(SpecError) as e:
        load_specs("nope")
    assert "'nope'" in str(e.value)
    for name in presets():
        assert name in str(e.value)


def test_unknown_base_lists_the_presets(tmp_path):
    path = write(tmp_path / "x.toml", 'base = "nope"\n')
    with pytest.raises(SpecError, match=r"unknown preset 'nope'.*standard"):
        load_specs(path)


def test_invalid_toml_is_a_spec_error_naming_the_file(tmp_path):
    path = write(tmp_path / "broken.toml", "lr = = 1\n")
    with pytest.raises(SpecError, match=r"broken\.toml: invalid TOML"):
        load_specs(path)


def test_seeds_repeat_the_spec_per_seed(tmp_path):
    path = write(tmp_path / "s.toml", 'name = "s"\nepochs = 3\nseeds = [4, 5, 6]\n')
    specs = load_specs(path)
    assert [s.seed for s in specs] == [4, 5, 6]
    assert all(s == RunSpec(name="s", epochs=3, seed=s.seed) for s in specs)
    assert len({s.key() for s in specs}) == 3


def test_runs_tables_times_seeds(tmp_path):
    path = write(
        tmp_path / "r.toml",
        "epochs = 4\nseeds = [0, 1]\n\n"
        '[[runs]]\nname = "sgd"\n\n'
        '[[runs]]\nname = "adam"\noptimizer = "adam"\nlr = 1e-3\n',
    )
    specs = load_specs(path)
    assert [(s.name, s.seed) for s in specs] == [("sgd", 0), ("sgd", 1), ("adam", 0), ("adam", 1)]
    assert specs[2] == RunSpec(name="adam", epochs=4, optimizer="adam", lr=1e-3, seed=0)
    assert specs[0].epochs == specs[3].epochs == 4


def test_overrides_apply_last_to_every_run(tmp_path):
    path = write(
        tmp_path / "o.toml", 'lr = 0.3\nseeds = [0, 1]\n[[runs]]\nname = "a"\n[[runs]]\nname = "b"\nlr = 0.2\n'
    )
    specs = load_specs(path, {"lr": "0.05", "epochs": 2})
    assert len(specs) == 4
    assert all(s.lr == 0.05 and s.epochs == 2 for s in specs)


def test_error_in_a_run_table_names_the_file_and_the_value(tmp_path):
    path = write(tmp_path / "bad.toml", '[[runs]]\nname = "ok"\n[[runs]]\nname = "bad"\noptimizer = "adamx"\n')
    with pytest.raises(SpecError, match=r"bad\.toml: unknown optimizer 'adamx'"):
        load_specs(path)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("seeds = 5\n", "seeds=5 must be a non-empty array"),
        ("seeds = []\n", "seeds=[] must be a non-empty array"),
        ('seeds = ["a"]\n', "seed='a' is not a valid int"),
        ("seeds = [-1]\n", "seed=-1 must be in"),
        ("runs = [1]\n", "runs=[1] must be a non-empty array of tables"),
        ("runs = []\n", "runs=[] must be a non-empty array of tables"),
        ("[runs]\nname = 'x'\n", "must be a non-empty array of tables"),
        ("base = 3\n", "base=3 must be a preset name"),
        ("data = 3\n", "data=3 must be a table"),
        ("[data]\ntemplate_len = 10000000\n", "data.template_len=10000000"),
    ],
)
def test_malformed_spec_file_is_a_spec_error_naming_file_and_key(tmp_path, text, fragment):
    with pytest.raises(SpecError, match=r"^m\.toml: ") as e:
        load_specs(write(tmp_path / "m.toml", text))
    assert fragment in str(e.value)


def test_non_utf8_spec_file_is_a_spec_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin1\.toml: invalid TOML: not UTF-8"):
        load_specs(path)


def test_override_errors_are_spec_errors():
    with pytest.raises(SpecError, match="bogus"):
        load_specs("standard", {"bogus": 1})
    with pytest.raises(SpecError, match="epochs"):
        load_specs("standard", {"epochs": 0})
