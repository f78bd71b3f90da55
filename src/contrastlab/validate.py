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

from . import families
from .config import ConfigError, StudyConfig
from .grid import Cell
from .hfconfig import ModelInfo, model_info, weight_modules
from .layers import frozen_reads, resolve_layer

log = logging.getLogger("contrastlab.validate")


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
        written = {**study.experiments[cell.experiment].loss, **{k: v for k, v in cell.sweep.items() if "." not in k}}
        check_cell(cell.config, infos[name], study.probe.layers, f"{where}: cell {cell.name}", written)


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


def check_cell(cfg, info: ModelInfo, probe_layers, at: str, written_loss: dict | None = None) -> None:
    """One cell's config (contrastlab.config.CellConfig) against its model; ConfigError naming it.
    `written_loss`: its loss keys as the config file writes them, whose layers are range-checked
    even where the cell does not read them (else only the layers it reads are)."""
    m, n = cfg.model, info.num_layers
    if n is None:
        return
    if m.trainable_layers > n and m.lora is None:
        raise ConfigError(f"{at}: model.trainable_layers = {m.trainable_layers}, but {m.name} has {n} encoder layers")
    if info.max_positions is not None and m.max_len > info.max_positions:
        raise ConfigError(f"{at}: model.max_len = {m.max_len}, but {m.name} has position embeddings for "
                          f"{info.max_positions} tokens")
    params = families.parse_params(cfg.family, cfg.loss, at)
    named = (families.parse_params(cfg.family, written_loss, at).named_layers() if written_loss is not None
             else params.contrast_layers())
    for layer in named:
        try:
            resolve_layer(layer, n)
        except ValueError as e:
            raise ConfigError(f"{at}: loss layer {layer}: {e} ({m.name})") from None
    frozen = frozen_reads(params.contrast_layers(), n, m.trainable_layers, m.lora is not None)
    if frozen:
        low = n - m.trainable_layers
        raise ConfigError(
            f"{at}: the contrastive term reads encoder layer(s) {frozen}, but only layers {low}..{n - 1} train "
            f"(model.trainable_layers = {m.trainable_layers} of {n}), so it would be a constant with no gradient. "
            f"Contrast layers >= {low}, or train more layers (model.trainable_layers: {n - min(frozen)}), "
            f"or use model.lora (it adapts every layer)")
    for layer in probe_layers:
        try:
            resolve_layer(layer, n)
        except ValueError as e:
            raise ConfigError(f"{at}: probe.layers: {e} ({m.name})") from None
