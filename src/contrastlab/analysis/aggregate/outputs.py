"""The tables and figures of every study's report (a family's own are declared in its package,
contrastlab.objectives.families.<family>.OUTPUTS; the plan joins them, contrastlab.plan.study).

Their builders are the functions of that name in aggregate.tables, called (study, comp) -> Table,
and in aggregate.figures, called (study, comp, path); their captions are workflow/report/<name>.rst.
Nothing heavy is imported here: the DAG build reads it to fix the aggregate rule's outputs.
"""
from __future__ import annotations

from pathlib import Path

from contrastlab.plan.contract import Output

CAPTIONS = Path(__file__).resolve().parents[4] / "workflow" / "report"


def _common(name: str, kind: str, title: str) -> Output:
    module = "tables" if kind == "table" else "figures"
    return Output(name, kind, title, f"{__package__}.{module}:{name}", CAPTIONS / f"{name}.rst")


COMMON = [
    _common("headline", "table", "Headline: the verdict and the test metrics of every cell"),
    _common("representation", "table", "Representation of the final [CLS]: probes"),
    _common("forest", "figure", "Difference to the reference with its 95% interval"),
    _common("seed_scores", "figure", "Test accuracy per seed, cell by cell"),
    _common("loss_curves", "figure", "Training loss by family"),
    _common("grad_norm", "figure", "Gradient norm by family"),
    _common("val_curves", "figure", "Validation accuracy and loss by family"),
]
NEEDS_PROBES = {"representation"}
# Only in a study that tunes (config `tune:`, contrastlab.plan.tuning); builders in aggregate.tuning.
TUNING = [
    Output("tuning", "table", "Tuning: each arm's trials, its selected configuration and expected best validation "
           "accuracy", f"{__package__}.tuning:tuning_table", CAPTIONS / "tuning.rst"),
    Output("tuning_curves", "figure", "Expected best validation accuracy against the number of trials",
           f"{__package__}.tuning:tuning_curves", CAPTIONS / "tuning_curves.rst"),
]
