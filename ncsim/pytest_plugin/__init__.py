"""The claims suite's pytest plugin, in three parts, loaded by the root conftest.py:

    runs.py     options (--seeds, --cache-dir, --fresh-runs), the run store, the `run` and `get_run`
                fixtures, and the parametrization of claims over checks x configurations x seeds
    checks.py   the `claim_check` fixture and the expected failures of claims/expected_failures.toml
    report.py   the report folder written at the end of a claims session (--no-report, --report-dir)
"""

pytest_plugins = ["ncsim.pytest_plugin.runs", "ncsim.pytest_plugin.checks", "ncsim.pytest_plugin.report"]
