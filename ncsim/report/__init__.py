"""The report of a claims session: one folder with the figures and the verdict table.

    <out>/runs/<UTC time, e.g. 2026-11-24T1530Z>/
        report.md        headline counts, a verdict per claim, the figures embedded, a row per check
        verdicts.json    the same content, machine-readable, with every field of every check record
        verdicts.png (with a claims session)  training.png  nc_metrics.png  layerwise.png
        optimizers.png  geometry.png  ablation.png  losses.png  label_noise.png  imbalance.png
        transfer.png  ufm_imbalance.png
    <out>/latest         symlink to the newest folder (where links cannot be made: a text file naming it)

Each check is one test and one record (ncsim.verdict.Verdict); how a claim file's verdict line and
the headline count them: ncsim.report.aggregate.

`write` assembles a folder from what it is given: the runs to draw (configuration name -> trajectories
over seeds) and the test outcomes of a claims session. `from_session` (the pytest plugin,
ncsim/pytest_plugin/report.py) and `from_store` (`ncsim report`) look the runs up in the run store and never train;
`from_store` takes its verdicts from the newest verdicts.json under <out>, if any.

In verdicts.json a measured value that is not a finite number is the string "inf", "-inf" or "nan"
(JSON has no such numbers); a check that measured NaN records null (ncsim.verdict.Verdict). Each claim's
figures are those its claim file declares (FIGURES, file names of the registry, carried in its checks'
records); the UFM imbalance figure draws the sweep that claims/test_ufm_imbalance.py stores
(ncsim.suite.ufm_imbalance_sweep) and never solves anything itself.

One module per job: collect (the stored runs, an earlier session's verdicts), aggregate (the tests of a
session, the verdict of each claim), registry (the figures, each declared once), render (drawing them
into the folder), markdown (report.md), folders (the folder and <out>/latest), assemble (`write`,
`from_session`, `from_store`). The figures themselves are ncsim.figures.
"""

from ncsim.report.aggregate import (
    CHECK_STATUSES,
    KINDS,
    OUTCOMES,
    SEVERE,
    RecordedTest,
    check_name,
    check_status,
    claim_verdict,
    counts,
    figures_for,
    headline,
    kind,
    many,
    session_configs,
    verdicts,
)
from ncsim.report.assemble import from_session, from_store, write
from ncsim.report.collect import collect_runs, latest_verdicts, not_drawn, outcomes_of, same_session
from ncsim.report.folders import new_folder, point_latest
from ncsim.report.markdown import (
    CHECK_COLUMNS,
    NO_SESSION,
    aggregate_text,
    markdown,
    needs,
    number,
    p_text,
    per_seed,
    rests_on,
    tally,
)
from ncsim.report.registry import FIGURE_TABLES, FIGURES, REGISTRY, RUNS_THE_NETWORK, FigureSpec, figure_makers
from ncsim.report.render import render

__all__ = [
    "CHECK_COLUMNS",
    "CHECK_STATUSES",
    "FIGURES",
    "FIGURE_TABLES",
    "KINDS",
    "NO_SESSION",
    "OUTCOMES",
    "REGISTRY",
    "RUNS_THE_NETWORK",
    "SEVERE",
    "FigureSpec",
    "RecordedTest",
    "aggregate_text",
    "check_name",
    "check_status",
    "claim_verdict",
    "collect_runs",
    "counts",
    "figure_makers",
    "figures_for",
    "from_session",
    "from_store",
    "headline",
    "kind",
    "latest_verdicts",
    "many",
    "markdown",
    "needs",
    "new_folder",
    "not_drawn",
    "number",
    "outcomes_of",
    "p_text",
    "per_seed",
    "point_latest",
    "render",
    "rests_on",
    "same_session",
    "session_configs",
    "tally",
    "verdicts",
    "write",
]
