"""The claims suite's pytest plugin as a user meets it (ncsim/pytest_plugin): registered by ncsim's
entry point, a claims directory found wherever its tolerances.toml is, one-line errors for a claim file
written wrong, and --spec, which checks the claims on the user's own run."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ncsim.pytest_plugin
from ncsim import suite
from ncsim.spec import SpecError, load_specs, seedless_key
from ncsim.store import RunStore
from ncsim.verdict import PROPERTY, from_property

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "claims"

# One tolerance a trained run always meets and one it never does (rule "every": one value per seed).
TOLERANCES = """
[loose]
value = 1e9
op = "<="
statistic = "end train NC1, any value"
source = "test"
calibration = "none"

[never]
value = -1
op = ">="
statistic = "end train NC1, never below 0"
source = "test"
calibration = "none"
"""


def write_claims(folder: Path, claim: str, tolerances: str = TOLERANCES) -> Path:
    """A claims directory: its tolerances.toml and one claim file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tolerances.toml").write_text(tolerances)
    (folder / "test_claim.py").write_text(textwrap.dedent(claim))
    return folder


def only_report(result, when: str):
    """The one report of phase `when` of an inline run."""
    (rep,) = [r for r in result.getreports("pytest_runtest_logreport") if r.when == when]
    return rep


# --- installation ---------------------------------------------------------------------------------


def test_the_plugin_is_registered_once_by_its_entry_point(pytestconfig):
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.value == "ncsim.pytest_plugin"]
    registered = [
        name for name, plugin in pytestconfig.pluginmanager.list_name_plugin() if plugin is ncsim.pytest_plugin
    ]
    assert registered == [entry.name]


def test_a_claims_directory_is_wherever_its_tolerances_are(pytester, tmp_path):
    """A claim file in a folder of any name, with its tables beside it, is decided and reported."""
    write_claims(
        pytester.path / "my_checks",
        """
        def test_holds(claim_check):
            claim_check("loose", 0.5, seed=0, run="x-s0")
    """,
    )
    (pytester.path / "other").mkdir()
    (pytester.path / "other" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    result = pytester.runpytest_inprocess(
        "--seeds", "0", "--cache-dir", str(tmp_path / "store"), "--report-dir", "out", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "out" / "latest" / "verdicts.json").read_text())
    (claim,) = doc["claims"]
    assert claim["file"] == "my_checks/test_claim.py" and claim["status"] == "reproduces"


# --- the extended tier -----------------------------------------------------------------------------

EXTENDED_CLAIM = """
    import pytest

    pytestmark = pytest.mark.extended

    def test_extended(claim_check):
        claim_check("loose", 0.5, seed=0, run="x-s0")
"""


@pytest.mark.parametrize(
    "args, passed, deselected",
    [
        ((), 1, 1),  # by default the extended claims are left out
        (("--extended",), 2, 0),
        (("-m", "extended"), 1, 1),  # only them
        (("-m", "not extended", "--extended"), 1, 1),  # an explicit -m decides
    ],
)
def test_extended_claims_run_only_when_asked_for(pytester, tmp_path, args, passed, deselected):
    write_claims(pytester.path / "claims", EXTENDED_CLAIM)
    (pytester.path / "claims" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    result = pytester.runpytest_inprocess(
        "claims", "--seeds", "0", "--cache-dir", str(tmp_path / "store"), "--no-report", "-p", "no:cacheprovider", *args
    )
    result.assert_outcomes(passed=passed, deselected=deselected)


def test_an_extended_claim_is_reported_in_its_own_section(pytester, tmp_path):
    write_claims(pytester.path / "claims", EXTENDED_CLAIM)
    result = pytester.runpytest_inprocess(
        "claims",
        "--extended",
        "--seeds",
        "0",
        "--cache-dir",
        str(tmp_path / "store"),
        "--report-dir",
        "out",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "out" / "latest" / "verdicts.json").read_text())
    (claim,) = doc["claims"]
    assert claim["kind"] == "extended" and set(doc["headline"]) == {"extended"}
    assert "Extended tier (--extended)" in (pytester.path / "out" / "latest" / "report.md").read_text()


def test_the_suites_extended_claims_are_left_out_by_default():
    """On the suite's own claims: without --extended, no extended claim file is collected (so none of
    the configurations only they read is trained: ncsim.pytest_plugin.runs.needed_runs reads the
    collected items); with it, all of them are."""

    def collected(*args) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "claims", "--co", "-q", "-p", "no:cacheprovider", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {line.split("::")[0].removeprefix("claims/") for line in out.splitlines() if "::" in line}

    files, files_ext = collected(), collected("--extended")
    extended = {"test_all_losses.py", "test_minority_collapse.py", "test_new_classes.py", "test_label_noise.py"}
    assert extended <= files_ext and not extended & files and files <= files_ext


# --- a claim file written wrong -------------------------------------------------------------------


def claim_file_error(pytester, claim: str, message: str) -> None:
    """A claims directory whose one claim file is `claim` stops the session at collection with the
    one-line error `message` (an fnmatch pattern), no traceback."""
    write_claims(pytester.path, claim)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() and "raise " not in result.stdout.str()


def test_a_statistic_named_test_is_an_error_naming_it(pytester):
    claim_file_error(
        pytester,
        """
        from ncsim.checks import Check

        def test_end_nc1(run):
            return run.final("train.nc1")

        CHECKS = (Check("loose", test_end_nc1),)
    """,
        "test_claim.py: test_end_nc1 is a function of the check 'loose' in CHECKS, and pytest collects every "
        "test_* function as a test; rename it (e.g. end_nc1)",
    )


def test_a_test_of_its_own_that_takes_runs_is_an_error_naming_the_test(pytester):
    claim_file_error(
        pytester,
        """
        def test_claim(runs):
            pass
    """,
        "test_claim.py::test_claim takes `runs`: the plugin makes the tests of a claim's checks itself; declare "
        "them in a CHECKS table*",
    )


def test_checks_of_the_wrong_type_are_an_error_naming_the_type(pytester):
    claim_file_error(
        pytester,
        """
        CHECKS = {"loose": len}
    """,
        "test_claim.py: CHECKS must be a tuple of ncsim.checks.Check, a ncsim.claim.Checks table "
        "or a tuple of them (docs/adding-a-claim.md), got dict",
    )


def test_a_table_holding_something_else_is_an_error_naming_it(pytester):
    claim_file_error(
        pytester,
        """
        from ncsim.checks import Check
        CHECKS = (Check("loose", len), "never")
    """,
        "test_claim.py: CHECKS holds 'never' (str); CHECKS must be a tuple of*",
    )


def test_a_check_of_an_unknown_tolerance_is_an_error_naming_it(pytester):
    claim_file_error(
        pytester,
        """
        from ncsim.checks import Check
        CHECKS = (Check("loose", len), Check("lose", len))
    """,
        "test_claim.py: test_claim: check 'lose' names no tolerance of tolerances.toml",
    )


def test_a_case_check_with_configurations_is_an_error(pytester):
    claim_file_error(
        pytester,
        """
        from ncsim.checks import Check
        from ncsim.claim import Case, Checks
        CHECKS = Checks("test_value", Check("loose", float, configs=("adam",)),
                        cases=[Case("one", lambda store: 1.0, run="x")])
    """,
        "test_claim.py: test_value: check 'loose' is measured on the table's cases: it takes no configs, against or "
        "controls",
    )


def test_a_table_named_as_a_test_function_of_the_module_is_an_error(pytester):
    claim_file_error(
        pytester,
        """
        from ncsim.checks import Check
        from ncsim.claim import Checks
        CHECKS = Checks("test_value", Check("loose", len))

        def test_value():
            pass
    """,
        "test_claim.py: test_value is both a table of CHECKS and a function of the module; rename one",
    )


def test_a_case_declared_twice_and_a_table_name_that_is_no_test_name_are_errors(pytester):
    claim_file_error(
        pytester,
        """
        from ncsim.checks import Check
        from ncsim.claim import Case, Checks
        CASE = Case("one", lambda store: 1.0, run="x")
        CHECKS = Checks("value", Check("loose", float), cases=[CASE, CASE])
    """,
        "test_claim.py: table 'value': its name is the test name pytest shows and must start with 'test' "
        "(e.g. 'test_value'); value[one-loose] is declared twice",
    )


CASE_CLAIM = """
    from ncsim.checks import Check
    from ncsim.claim import Case, Checks

    def half(x):
        return x / 2

    def below(x):
        return -1 - x

    CHECKS = (
        Checks("test_value", Check("loose", half, note=lambda x: f"x = {x}"), Check("never", below),
               cases=[Case(f"x{x}", lambda store, x=x: float(x), run=f"model-{x}", seed=x) for x in (1, 2)]),
        Checks("test_other", Check("loose", half), cases=[Case("x3", lambda store: 3.0, run="model-3")]),
    )
"""


def test_a_case_table_makes_one_test_per_case_and_check_with_its_record(pytester):
    """A table of cases: the made tests take a case and a check, named `<case id>-<tolerance>`, and each
    records the one value with the case's seed and run and the check's note; expected failures name
    a case by its id."""
    write_claims(pytester.path, CASE_CLAIM)
    (pytester.path / "expected_failures.toml").write_text('[never.x1]\nreason = "never holds"\n')
    result = pytester.inline_run("-p", "no:cacheprovider", "--no-report")
    reports = {r.nodeid: r for r in result.getreports("pytest_runtest_logreport") if r.when == "call"}
    assert list(reports) == [
        "test_claim.py::test_value[x1-loose]",
        "test_claim.py::test_value[x1-never]",
        "test_claim.py::test_value[x2-loose]",
        "test_claim.py::test_value[x2-never]",
        "test_claim.py::test_other[x3-loose]",
    ]
    assert {r.location[0] for r in reports.values()} == {"test_claim.py"}  # reported at the claim file
    assert reports["test_claim.py::test_value[x1-never]"].skipped  # the expected failure: xfail
    assert reports["test_claim.py::test_value[x2-never]"].failed
    record = from_property(dict(reports["test_claim.py::test_value[x2-loose]"].user_properties)[PROPERTY])
    assert (
        record.claim,
        record.case,
        record.values,
        record.seeds,
        record.runs,
        record.run,
        record.config,
        record.note,
    ) == ("test_claim", "x2-loose", (1.0,), (2,), ("model-2",), "model-2", None, "x = 2.0")


# --- --spec: the configurations of a user's spec ---------------------------------------------------


def write_spec(folder: Path, text: str, name: str = "mine.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_spec_stands_for_standard_and_the_variants_apply_their_changes(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name = "mine"
        model = "cnn1d"
        width = 8
        epochs = 3
        seed = 7
    """,
    )
    configs = suite.user_configurations(path)
    mine = configs.specs["standard"]
    assert (mine.name, mine.model, mine.width, mine.epochs) == ("mine", "cnn1d", 8, 3)
    assert configs.specs["adam"] == mine.replace(name="mine+adam", optimizer="adam", lr=1e-3)
    assert configs.specs["adamw"] == mine.replace(name="mine+adamw", optimizer="adamw", lr=1e-3, weight_decay=0.25)
    assert configs.specs["mse"] == mine.replace(name="mine+mse", loss="mse")
    assert configs.specs["no-wd"] == mine.replace(name="mine+no-wd", weight_decay=0.0)
    assert configs.specs["no-bn"] == mine.replace(name="mine+no-bn", batch_norm=False, width=0)
    assert configs.source == str(path) and configs.left_out == {}
    # the session's seeds replace the spec's seed
    assert configs.spec(suite.RunId("adam", 2)) == configs.specs["adam"].replace(seed=2)
    assert configs.spec(suite.RunId("standard", 2, 2)).label() == "mine-s2-d2"


def test_a_variant_whose_changes_do_not_apply_is_left_out_with_the_reason(tmp_path):
    path = write_spec(tmp_path, 'name = "plain"\nmodel = "cnn1d"\nbatch_norm = false\n')
    configs = suite.user_configurations(path)
    assert set(configs.left_out) == {"lbfgs"} and "lbfgs" not in configs.specs
    reason = configs.left_out["lbfgs"]
    assert reason.endswith(
        "do not apply to mine.toml: eval_bn_stats='recomputed' needs batch_norm=true: a network "
        "without batch norm has no statistics to recompute"
    )
    assert reason.startswith("its changes from standard (optimizer='lbfgs', lr=0.1,")
    with pytest.raises(KeyError, match="'lbfgs' is left out: its changes from standard"):
        configs.spec(suite.RunId("lbfgs", 0))


def test_the_suite_configurations_are_the_preset_runs():
    configs = suite.suite_configurations()
    assert configs.source is None and configs.left_out == {}
    for name in suite.CONFIGS:
        assert configs.spec(suite.RunId(name, 3)) == suite.config(name, 3) == suite.preset_runs()[name].replace(seed=3)
    assert suite.variant_changes("standard") == {} and suite.variant_changes("mse") == {"loss": "mse"}


def test_a_spec_based_on_standard_never_takes_the_label_of_the_suite_run(tmp_path):
    changed = suite.user_configurations(write_spec(tmp_path, 'base = "standard"\nepochs = 3\n', "a.toml"))
    same = suite.user_configurations(write_spec(tmp_path, 'base = "standard"\n', "b.toml"))
    named = suite.user_configurations(write_spec(tmp_path, 'base = "standard"\nname = "adam"\nepochs = 3\n', "c.toml"))
    suite_labels = {suite.config(name, 0).label() for name in suite.preset_runs()}
    mine = changed.spec(suite.RunId("standard", 0))
    assert mine.label() == f"standard-{seedless_key(mine)[:6]}-s0" and mine.label() not in suite_labels
    assert changed.spec(suite.RunId("adam", 0)).label() == f"standard-{seedless_key(mine)[:6]}+adam-s0"
    # the same spec as the suite's is the suite's run, record and label
    assert same.spec(suite.RunId("standard", 0)) == suite.config("standard", 0)
    # a name of a suite configuration given to another spec is told apart too
    assert named.spec(suite.RunId("standard", 0)).name.startswith("adam-")
    labels = [c.spec(suite.RunId(n, 0)).label() for c in (changed, named) for n in c.specs]
    assert not set(labels) & suite_labels


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('name = "m"\nseeds = [1, 2]\n', "mine.toml: describes 2 runs; a spec to check the claims on is one run"),
        ('name = "m"\nlr = 0\n', "mine.toml: lr=0.0 must be > 0"),
        ('name = "m"\nlearning_rate = 0.1\n', "unknown spec key(s) ['learning_rate']"),
    ],
)
def test_a_bad_spec_file_is_a_spec_error(tmp_path, text, fragment):
    with pytest.raises(SpecError, match=re.escape(fragment)):
        suite.user_configurations(write_spec(tmp_path, text))


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("missing.toml", "--spec: no such spec file"),
        ("bad.toml", "--spec: bad.toml: unknown spec key(s) ['bogus']"),
    ],
)
def test_a_bad_spec_option_is_a_usage_error(pytester, spec, fragment):
    write_spec(pytester.path, "bogus = 1\n", "bad.toml")
    write_claims(pytester.path, "def test_plain():\n    pass\n")
    result = pytester.runpytest_inprocess("--spec", spec, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert fragment in result.stderr.str()


USER_CLAIMS = """
    from ncsim.checks import Check

    def end_nc1(run):
        return run.final("train.nc1")

    def ratio(run, reference):
        return run.final("train.nc1") / reference.final("train.nc1")

    CHECKS = (
        Check("loose", end_nc1, configs=("standard", "adam", "lbfgs")),
        Check("loose", ratio, configs=("mse",), against="standard"),
    )
"""
# An expected failure of the suite's own adam runs: not strict on a user's spec, where the check holds.
EXPECTED = '[loose.adam]\nreason = "documented on the suite\'s runs"\n'
# No batch norm: the lbfgs variant (eval_bn_stats = "recomputed") does not apply.
USER_SPEC = """
    name = "mine"
    model = "cnn1d"
    width = 4
    batch_norm = false
    epochs = 2
    train_size = 400
    eval_schedule = "all"
    layer_schedule = "none"
    seed = 9
"""


def test_spec_checks_the_claims_on_the_users_runs(pytester, cache_dir):
    """In a fresh process (training sets the process's thread count), as a user runs it."""
    claims = write_claims(pytester.path / "claims", USER_CLAIMS)
    (claims / "expected_failures.toml").write_text(EXPECTED)
    spec = write_spec(pytester.path, USER_SPEC)
    result = pytester.runpytest_subprocess(
        "claims",
        "--spec",
        "mine.toml",
        "--seeds",
        "0",
        f"--cache-dir={cache_dir}",
        "--report-dir",
        "out",
        "-p",
        "no:cacheprovider",
        "-rs",
    )
    result.assert_outcomes(passed=2, xpassed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "ncsim: claims checked on *mine.toml (standard = mine, *adam = mine+adam*; left out: lbfgs)",
            "claims checked on the spec *mine.toml",
            "SKIPPED*lbfgs: its changes from standard*needs batch_norm=true*",
        ]
    )
    configs = suite.user_configurations(spec)
    keys = {configs.spec(suite.RunId(name, 0, 0)).key() for name in ("standard", "adam", "mse")}
    assert set(RunStore(cache_dir).keys()) == keys  # the user's runs, on the session's seed, and only those
    doc = json.loads((pytester.path / "out" / "latest" / "verdicts.json").read_text())
    assert doc["session"]["spec"]["file"] == str(spec)
    assert doc["session"]["spec"]["run"] == configs.specs["standard"].to_dict()
    assert doc["session"]["spec"]["left_out"] == {"lbfgs": configs.left_out["lbfgs"]}
    (claim,) = doc["claims"]
    outcomes = {t["nodeid"].split("::")[1]: t["outcome"] for t in claim["tests"]}
    assert outcomes == {
        "test_claim[standard-loose]": "passed",
        "test_claim[adam-loose]": "xpassed",
        "test_claim[lbfgs-loose]": "skipped",
        "test_claim[mse-loose]": "passed",
    }
    records = {c["config"]: c for t in claim["tests"] for c in t["checks"]}
    assert records["standard"]["runs"] == ["mine-s0-d0"] and records["adam"]["runs"] == ["mine+adam-s0-d0"]
    assert records["mse"]["runs"] == ["mine+mse-s0-d0"] and records["mse"]["against"] == "standard"
    assert doc["runs"]["standard"] == ["mine-s0-d0"] and "lbfgs" not in doc["runs"]
    assert (pytester.path / "out" / "latest" / "report.md").is_file()


# --- an installed ncsim, outside the repository ---------------------------------------------------


def _run(args: list, ok: tuple[int, ...] = (0,), **kwargs) -> subprocess.CompletedProcess:
    """Run a command; its output tail when it exits with another status than `ok`."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode in ok, done.stdout[-4000:] + done.stderr[-4000:]
    return done


@pytest.mark.slow
def test_an_installed_ncsim_checks_a_claim_file_outside_the_repository(tmp_path, data_cache):
    """pip install (not editable) into a fresh venv; one claim file, the statistics the claims share and
    the claims' tables copied to a claims folder of a project of their own; pytest there on a user's
    spec: the claim's cases run and the report is written."""
    start = time.monotonic()
    source = tmp_path / "source"  # what a wheel is built from; a copy, so that no build output lands in the repository
    shutil.copytree(ROOT / "ncsim", source / "ncsim", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "torch==2.13.0"])
    _run([python, "-m", "pip", "install", "-q", source, "pytest"])

    project = tmp_path / "project"
    (project / "claims").mkdir(parents=True)
    for name in ("__init__.py", "shared.py", "test_nc4_nearest_center.py", "tolerances.toml", "expected_failures.toml"):
        shutil.copy(CLAIMS / name, project / "claims" / name)
    write_spec(project, 'base = "standard"\nepochs = 3\ntrain_size = 400\neval_schedule = "all"\n', "my_regime.toml")
    store = tmp_path / "store"
    shutil.copytree(data_cache / "data", store / "data")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NCSIM_CACHE")}
    where = _run([python, "-c", "import ncsim; print(ncsim.__file__)"], cwd=project, env=env).stdout
    assert Path(where.strip()).is_relative_to(venv)

    done = _run(
        [
            python,
            "-m",
            "pytest",
            "claims",
            "-p",
            "no:cacheprovider",
            "-rA",
            "--spec",
            "my_regime.toml",
            "--seeds",
            "0",
            f"--cache-dir={store}",
            "--report-dir",
            "out",
        ],
        cwd=project,
        env=env,
        ok=(0, 1),
    )
    doc = json.loads((project / "out" / "latest" / "verdicts.json").read_text())
    (claim,) = doc["claims"]
    assert claim["file"] == "claims/test_nc4_nearest_center.py"
    outcomes = {t["nodeid"].split("::")[1]: t["outcome"] for t in claim["tests"]}
    assert set(outcomes) == {
        "test_nearest_class_center[standard-nc4_end_max]",
        "test_nearest_class_center[standard-nc4_late_tpt_mean_max]",
    }
    assert set(outcomes.values()) <= {"passed", "failed"}, done.stdout[-4000:]
    mine = load_specs(project / "my_regime.toml")[0]
    assert doc["session"]["spec"]["configurations"]["standard"] == mine.name != "standard"
    assert all(c["runs"] == [f"{mine.name}-s0-d0"] for t in claim["tests"] for c in t["checks"])
    assert (project / "out" / "latest" / "report.md").is_file()
    assert time.monotonic() - start < 300
