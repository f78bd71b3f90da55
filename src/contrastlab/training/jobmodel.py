"""`job_model(cfg, runtime, device, num_labels)`: a job's model, ready to train or to embed.

The one place a job turns a resolved cell config into a model: the precision (`auto` resolved,
contrastlab.training.precision), the loss params parsed once, the cell checked against the model's own
config (contrastlab.plan.fits: what the DAG build could not see for a hub model outside the cache), the
seed, the attention kernel for that precision, the classifier built with the family's objective
(or, with `weights`, a finished cell's classifier loaded and frozen), and its frozen linear layers
stored in the autocast dtype. train.py, embed.py and the benchmarks call it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contrastlab.plan.config import CellConfig, LossParams, RuntimeConfig
from contrastlab.objectives.families import build_objective, parse_params
from contrastlab.plan.fits import check_fits
from contrastlab.plan.hfconfig import ModelInfo
from contrastlab.training.model import Classifier, build_classifier, from_pretrained, load_trained
from contrastlab.objectives.objective import Objective
from contrastlab.training.precision import Precision, attention_kernel, setup_precision, store_frozen_in_autocast_dtype


@dataclass
class JobModel:
    model: Classifier
    precision: Precision  # what runs: train.precision with auto resolved on the job's device
    objective: Objective | None  # the family's (contrastlab.objectives.objective), to train; None to embed
    params: LossParams  # the cell's loss params, parsed once


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def loaded_info(name: str) -> ModelInfo:
    """The model's own config as the job loads it (downloaded if it must be and may be)."""
    from transformers import AutoConfig

    return ModelInfo(name, "loaded", "", from_pretrained(AutoConfig, name).to_dict())


def job_model(cfg: CellConfig, runtime: RuntimeConfig, device: torch.device, num_labels: int,
              weights: str | Path | None = None, probe_layers=()) -> JobModel:
    """The model of cell `cfg` on `device`: to train (a fresh head, the cell's layers trainable, its
    objective; the seed set before anything random), or, given the `weights` of a finished cell, to
    embed (every parameter frozen). Raises PrecisionUnsupported or ConfigError in one line naming the key."""
    precision = setup_precision(cfg.train.precision, device, runtime.tf32, runtime.allow_slow_precision)
    at = f"cell {cfg.cell}"
    params = parse_params(cfg.family, cfg.loss, at)
    check_fits(cfg, loaded_info(cfg.model.name), params, probe_layers, at)
    seed_everything(cfg.seed)  # the head's initialisation and then the objective's are the seed's
    objective = None
    if weights is None:
        model = build_classifier(cfg.model, num_labels, attention_kernel(precision.name, device)).to(device)
        objective = build_objective(cfg.family, params, model).to(device)
    else:
        model = load_trained(cfg.model, weights, num_labels, device, attention_kernel(precision.name, device, False))
        model.requires_grad_(False)
    store_frozen_in_autocast_dtype(model, precision.name)
    return JobModel(model, precision, objective, params)
