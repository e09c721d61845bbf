"""The report's figures, drawn from run trajectories and check records (matplotlib, Agg, PNG about 800
px wide).

Every function takes what it draws and returns a matplotlib Figure (the object-oriented API, no pyplot
state: nothing to close, headless everywhere); `save` writes it. Runs come as trajectories over seeds,
one list per configuration name; nothing here reads the store or trains (ncsim.report looks the runs
up). `missing` names runs (ncsim.suite.RunId) that were asked for but are not in the store. Colours and
the configurations each comparison draws come from the suite table (ncsim/suite.toml). The verdict
figure (`verdicts`) draws the session's check records (ncsim.verdict.Verdict), not runs.

Conventions shared by all figures: a curve over seeds is an aggregate with a shaded min-max band
(`band`): the geometric mean on a log axis, the mean otherwise. Each seed's terminal phase of training
is marked (`tpt_marks`) by two thin vertical lines: dashed at its stable TPT (`tpt_epoch`: from there on
the train error stays 0), dotted at its first zero-error epoch (the error may come back after it). A
quantity that is exactly 0 for long stretches (train error, NC4) is drawn on a symlog axis that shows 0
(`zero_scale`). A run that is missing or did not finish (status "diverged" or "degenerate") is not drawn
and the title says so; with nothing left to draw the figure is a page that names the runs and why
(`message`), never an empty plot.

One module per group of figures: base (what every figure shares), runs (one configuration's runs over
seeds), comparisons (configurations on shared axes), doses (end-of-training collapse against the weight
decay), probes (statistics probed on the trained networks), ufm (the unconstrained features model),
verdicts (the forest plot of the check records).
The report declares which of them it draws (ncsim.report.registry).
"""

from ncsim.figures.base import (
    CLASSIFIER,
    DPI,
    MEANS,
    OPTIMIZER_NAMES,
    STYLE,
    TEST,
    TPT_MARKS,
    TRAIN,
    WIDTH,
    Series,
    band,
    column,
    epoch_log_scale,
    finish,
    log_scale,
    message,
    no_data,
    not_drawn,
    plain,
    save,
    scaled,
    seed_list,
    seeds_note,
    short_label,
    styled,
    tpt_marks,
    usable,
    wrap,
    zero_scale,
)
from ncsim.figures.comparisons import (
    CONTRAST_DEFAULTS,
    CONTRAST_PANELS,
    DESCRIBED,
    LOSS_NAMES,
    ablation,
    contrast_table,
    contrasts,
    label_noise,
    losses,
    optimizers,
)
from ncsim.figures.doses import DOSE_LINTHRESH, DOSE_PANELS, dose_scale, end_values, weight_decay
from ncsim.figures.probes import imbalance, transfer
from ncsim.figures.runs import (
    GEOMETRY_PANELS,
    LAYER_COLUMNS,
    LAYER_METRICS,
    NC_PANELS,
    end_by_depth,
    end_geometry,
    geometry,
    layer_series,
    layerwise,
    nc_metrics,
    training,
)
from ncsim.figures.ufm import ufm_imbalance
from ncsim.figures.verdicts import (
    ROW_HEIGHT,
    RULE_LABELS,
    VERDICT_COLOURS,
    VERDICT_LABEL_SIZE,
    VERDICT_PANELS,
    as_float,
    relative,
    verdict_panel,
    verdicts,
)

__all__ = [
    "CLASSIFIER",
    "CONTRAST_DEFAULTS",
    "CONTRAST_PANELS",
    "DESCRIBED",
    "DOSE_LINTHRESH",
    "DOSE_PANELS",
    "DPI",
    "GEOMETRY_PANELS",
    "LAYER_COLUMNS",
    "LAYER_METRICS",
    "LOSS_NAMES",
    "MEANS",
    "NC_PANELS",
    "OPTIMIZER_NAMES",
    "ROW_HEIGHT",
    "RULE_LABELS",
    "STYLE",
    "Series",
    "TEST",
    "TPT_MARKS",
    "TRAIN",
    "VERDICT_COLOURS",
    "VERDICT_LABEL_SIZE",
    "VERDICT_PANELS",
    "WIDTH",
    "ablation",
    "as_float",
    "band",
    "column",
    "contrast_table",
    "contrasts",
    "dose_scale",
    "end_by_depth",
    "end_geometry",
    "end_values",
    "epoch_log_scale",
    "finish",
    "geometry",
    "imbalance",
    "label_noise",
    "layer_series",
    "layerwise",
    "log_scale",
    "losses",
    "message",
    "nc_metrics",
    "no_data",
    "not_drawn",
    "optimizers",
    "plain",
    "relative",
    "save",
    "scaled",
    "seed_list",
    "seeds_note",
    "short_label",
    "styled",
    "tpt_marks",
    "training",
    "transfer",
    "ufm_imbalance",
    "usable",
    "verdict_panel",
    "verdicts",
    "weight_decay",
    "wrap",
    "zero_scale",
]
