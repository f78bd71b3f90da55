"""`train.match_budget: <experiment>`: a compute-matched control, resolved at the DAG build.

A cell that names an experiment gets the training budget of that experiment's matching cell (the
same data and the same values of the sweep keys both have): that cell's epochs or max_steps,
times steps_scale = (its cost per step) / (this cell's cost per step), spent as more optimizer
steps of the same batch and schedule shape (TrainConfig.total_steps). Costs per step are those of
contrastlab.plan.cost, estimated from each cell's config and its model's config.json at max_len tokens
per example (`train.match_by: passes` counts encoder passes instead).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from contrastlab.objectives import families
from contrastlab.plan.config import CellConfig, ConfigError, StudyConfig
from contrastlab.plan.cost import passes, planned_grad_cache
from contrastlab.plan.flopcount import per_token


def step_cost(cfg: CellConfig, encoder_config: dict | None, by: str) -> float:
    """Cost of one optimizer step per example: encoder passes, or FLOPs at max_len tokens."""
    params = families.parse_params(cfg.family, cfg.loss)
    trained, no_grad = passes(params, planned_grad_cache(cfg, params))
    if by == "passes":
        return trained + no_grad
    pt = per_token(encoder_config, cfg.model)
    return (trained * pt.trained + no_grad * pt.no_grad) * cfg.model.max_len


def _flops_follow_passes(a: CellConfig, b: CellConfig) -> bool:
    """Same model section and every pass with a graph: the FLOPs per step are proportional to the passes."""
    def no_grad(c: CellConfig) -> int:
        params = families.parse_params(c.family, c.loss)
        return passes(params, planned_grad_cache(c, params))[1]
    return a.model == b.model and no_grad(a) == no_grad(b) == 0


def _arm_cell(cell, candidates: list, at: str):
    """The cell of the named experiment with `cell`'s data and the values of the sweep keys both have."""
    def same(arm):
        shared = set(arm.sweep) & set(cell.sweep)
        return arm.config.data == cell.config.data and all(arm.sweep[k] == cell.sweep[k] for k in shared)
    found = [a for a in candidates if same(a)]
    if len(found) != 1:
        what = "none has" if not found else f"{len(found)} cells ({', '.join(a.name for a in found[:4])}) have"
        raise ConfigError(f"{at}: of its cells, {what} the data and sweep values of cell {cell.name}: "
                          "sweep the keys that tell them apart here too, or name an experiment of one cell")
    return found[0]


def match_budgets(study: StudyConfig, cells: list, where: str, encoder_config: Callable[[str], dict | None]) -> list:
    """`cells` (contrastlab.plan.grid.Cell) with each match_budget cell's epochs, max_steps and steps_scale
    set from its arm; ConfigError naming the key when the named experiment is missing, itself, or
    matches another's budget in turn. `encoder_config(model name)`: its config.json, or None."""
    unique: dict[str, dict] = {}
    for c in cells:
        unique.setdefault(c.experiment, {}).setdefault(c.name, c)
    out = []
    for cell in cells:
        t = cell.config.train
        if t.match_budget is None:
            out.append(cell)
            continue
        at = f"{where}: experiments.{cell.experiment}: train.match_budget = {t.match_budget!r}"
        if t.match_budget not in study.experiments:
            raise ConfigError(f"{at}: no such experiment (experiments: {', '.join(study.experiments)})")
        if t.match_budget == cell.experiment:
            raise ConfigError(f"{at}: an experiment cannot be given its own budget; name the arm it is compared with")
        arm = _arm_cell(cell, list(unique[t.match_budget].values()), at)
        if arm.config.train.match_budget is not None:
            raise ConfigError(f"{at}: {t.match_budget} itself takes the budget of {arm.config.train.match_budget!r} "
                              "(a chain or a cycle); name the experiment whose budget is wanted directly")
        a = arm.config.train
        if a.batch_size * a.grad_accum != t.batch_size * t.grad_accum:
            raise ConfigError(f"{at}: its step has {t.batch_size * t.grad_accum} examples and {t.match_budget}'s "
                              f"{a.batch_size * a.grad_accum}; the budget is spent as more steps of the same batch: "
                              "make train.batch_size x train.grad_accum equal")
        by = t.match_by
        if by == "flops" and _flops_follow_passes(arm.config, cell.config):
            by = "passes"  # the same ratio, without the model's config.json (a hub model not yet cached)
        costs = []
        for c in (arm, cell):
            config = encoder_config(c.config.model.name) if by == "flops" else None
            if by == "flops" and config is None:
                raise ConfigError(f"{at}: match_by flops needs the config.json of {c.config.model.name}, which is "
                                  "not in the local cache; download it first or set train.match_by: passes")
            costs.append(step_cost(c.config, config, by))
        scale = round(a.steps_scale * costs[0] / costs[1], 6)
        train = t.model_copy(update={"epochs": a.epochs, "max_steps": a.max_steps, "steps_scale": scale})
        out.append(replace(cell, config=cell.config.model_copy(update={"train": train})))
    return out
