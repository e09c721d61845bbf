"""The claims suite's pytest plugin, registered with pytest by ncsim's `pytest11` entry point
(pyproject.toml): installing ncsim is all a directory of claim files needs, in this repository or
anywhere else. In these parts:

    session.py  the one session object (config.stash): the seeds, configurations and run store that the
                options resolve to, and the runs the session's tests need
    collect.py  the tests of each claim file, made from its CHECKS declaration (ncsim.claim), and the
                usage errors of a claim file written wrong
    runs.py     options (--seeds, --cache-dir, --fresh-runs, --spec), the run store, the `runs` and
                `obtain_run` fixtures, and the runs a session trains first
    checks.py   the `claim_check` fixture and the expected failures of a claims directory's
                expected_failures.toml
    recorded.py --runs and --compare: the claims on runs recorded from a user's own training loop
    report.py   the report folder written at the end of a claims session (--no-report, --report-dir)

Do not also name it in a conftest's `pytest_plugins`: pytest would register it twice and stop.
"""

import pytest

# runs.py imports recorded.py before pytest imports it as a plugin: marked here, pytest's assertion
# rewriting still applies to it (and pytest does not warn that it came too late).
pytest.register_assert_rewrite("ncsim.pytest_plugin.recorded")

pytest_plugins = [
    "ncsim.pytest_plugin.runs",
    "ncsim.pytest_plugin.collect",
    "ncsim.pytest_plugin.checks",
    "ncsim.pytest_plugin.report",
    "ncsim.pytest_plugin.recorded",
]
