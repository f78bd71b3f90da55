"""Which tables and figures a study's report has: those of every study, then those its families
add (declared in contrastlab.families.<family>, built by its report module).

Nothing heavy is imported here: the DAG build reads it to fix the aggregate rule's outputs.
"""
from __future__ import annotations

from pathlib import Path

from .. import families
from ..layout import Output

COMMON = [
    Output("headline", "table", "Headline: the verdict and the test metrics of every cell"),
    Output("representation", "table", "Representation of the final [CLS]: probes"),
    Output("forest", "figure", "Difference to the reference with its 95% interval"),
    Output("seed_scores", "figure", "Test accuracy per seed, cell by cell"),
    Output("loss_curves", "figure", "Training loss by family"),
    Output("grad_norm", "figure", "Gradient norm by family"),
    Output("val_curves", "figure", "Validation accuracy and loss by family"),
]
NEEDS_PROBES = {"representation"}


def planned_outputs(cell_families, probes: bool = True) -> list[Output]:
    """The report of a grid with cells of these families (COMMON first, then family order)."""
    common = [o for o in COMMON if probes or o.name not in NEEDS_PROBES]
    return common + [o for f in dict.fromkeys(cell_families) for o in families.outputs(f)]


def caption(name: str, workflow_dir: str) -> str:
    """The report caption of output `name` (absolute): beside its family's code, or for an output
    of every study in workflow/report/."""
    family = owner(name)
    if family is None:
        return str(Path(workflow_dir) / "workflow" / "report" / f"{name}.rst")
    return str(Path(families.__file__).parent / family / f"{name}.rst")


def owner(name: str) -> str | None:
    """The family whose report module builds output `name`; None for a COMMON output."""
    for f in families.NAMES:
        if any(o.name == name for o in families.outputs(f)):
            return f
    return None
