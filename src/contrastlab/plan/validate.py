"""The checks of a study that need more than its config file: the model's own config (layers,
positions), the data files, the references between experiments. They run when the DAG is built,
so a bad value stops the workflow before any job, in one line that names it.

What only a job can know (a hub model or dataset that is not in the local cache, while offline)
is checked by that job, which then says in one line what to do.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from contrastlab.objectives import families
from contrastlab.plan.config import ConfigError, StudyConfig
from contrastlab.plan.grid import Cell
from contrastlab.plan.fits import check_fits
from contrastlab.plan.hfconfig import model_info, weight_modules

log = logging.getLogger("contrastlab.plan.validate")


def check_data_files(study: StudyConfig, cells: list[Cell], where: str) -> None:
    for data in {c.config.data.model_dump_json(): c.config.data for c in cells}.values():
        if data.source == "files":
            for split, path in data.files.items():
                if not Path(path).is_file():
                    raise ConfigError(f"{where}: data.files.{split} = {path!r}: no such file "
                                      f"(relative paths are from the directory snakemake runs in: {os.getcwd()})")
        if data.source == "hub" and os.environ.get("HF_HUB_OFFLINE") == "1":
            log.warning("data.name %s: HF_HUB_OFFLINE=1, so the prepare job will find it only in the local "
                        "Hugging Face cache", data.name)


def check_results_folder(study: StudyConfig, where: str) -> None:
    """The results folder, or the first part of its path that exists, must be a folder."""
    path = Path(study.results).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is inside {str(existing)!r}, a file"
        raise ConfigError(f"{where}: results = {study.results!r} {what}, not a folder: name a folder for the outputs")


def check_references(study: StudyConfig, where: str) -> None:
    if study.baseline not in study.experiments:
        raise ConfigError(f"{where}: baseline = {study.baseline!r}: no such experiment "
                          f"(experiments: {', '.join(study.experiments)})")
    for name, exp in study.experiments.items():
        ref = exp.compare_to
        if ref is None:
            continue
        at = f"{where}: experiments.{name}.compare_to = {ref!r}"
        if ref not in study.experiments:
            raise ConfigError(f"{at}: no such experiment")
        if name == study.baseline:
            raise ConfigError(f"{at}: {name} is the baseline, which the others are compared with; it has no "
                              "compare_to")
        if ref == name:
            raise ConfigError(f"{at}: an experiment is not compared with itself (leave compare_to out to compare "
                              f"it with the baseline, {study.baseline})")
        if study.experiments[ref].compare_to is not None:
            raise ConfigError(f"{at}: {ref} is itself compared with {study.experiments[ref].compare_to} "
                              f"(experiments.{ref}.compare_to); a reference is compared with the baseline only: "
                              f"compare {name} with {study.experiments[ref].compare_to}, or drop {ref}'s compare_to")


def check_against_model(study: StudyConfig, cells: list[Cell], where: str) -> None:
    """Layers, trainable layers, max_len and the contrastive terms' gradient, against the model."""
    infos, modules = {}, {}
    for cell in cells:
        name = cell.config.model.name
        if name not in infos:
            try:
                infos[name] = model_info(name)
            except ConfigError as e:
                raise ConfigError(f"{where}: cell {cell.name}: {e}") from None
            if infos[name].config is None:
                log.warning("model %s is not in the local Hugging Face cache: its layers and positions are "
                            "checked by the jobs that download it", name)
        if cell.config.model.lora is not None and cell.config.model.lora.target_modules:
            if name not in modules:
                modules[name] = weight_modules(infos[name])
            check_lora_targets(cell.config.model, modules[name], f"{where}: cell {cell.name}")
        at = f"{where}: cell {cell.name}"
        written = {**study.experiments[cell.experiment].loss, **{k: v for k, v in cell.sweep.items() if "." not in k}}
        check_fits(cell.config, infos[name], families.parse_params(cell.config.family, cell.config.loss, at),
                   study.probe.layers, at, families.parse_params(cell.config.family, written, at))


def check_lora_targets(model, modules: dict[str, int] | None, at: str) -> None:
    """model.lora.target_modules against the modules of the model's weights (hfconfig.weight_modules;
    None: unknown, left to the job), matched as peft does (a path equal to the name or ending in .name)."""
    targets = model.lora.target_modules if model.lora is not None else None
    if not targets or not modules:
        return
    missing = [t for t in targets if not any(m == t or m.endswith("." + t) for m in modules)]
    if missing:
        linear = sorted({m.rpartition(".")[2] for m, ndim in modules.items() if ndim == 2})
        raise ConfigError(f"{at}: model.lora.target_modules: {', '.join(map(repr, missing))} is not a module of "
                          f"{model.name} (its modules with 2-D weights: {', '.join(linear)})")
