"""What a cell's training costs: encoder passes per step, estimated FLOPs, and when two differ.

Per optimizer step each example goes through the encoder `Params.encoder_passes()` times with a
graph (R-Drop and SimCSE two-stage: 2; every other family computes all its views in one pass),
and under GradCache as many times again without one (contrastlab.objectives.contrastive). The FLOPs follow
FORMULA (contrastlab.plan.flopcount); the tokens are those the steps computed, padding included. The
measured device-seconds are the optimizer steps' own time, `train_time_s` (contrastlab.training.train).
Family-free, so the aggregate may import it; contrastlab.plan.match_budget gives a cell another's budget.
"""
from __future__ import annotations

from contrastlab.plan.config import CellConfig, ContrastParams, LossParams, ModelConfig
from contrastlab.plan.flopcount import per_token

FORMULA = ("train FLOPs ≈ tokens computed × (encoder passes with a graph × (2N + 4N × trained share of the "
           "layers) + passes without a graph × 2N), N = the encoder's matrix weights: 6N per token when every "
           "layer trains")
MATCH_TOLERANCE = 0.05  # a comparison whose arms' FLOPs differ by more is "not compute-matched"


def passes(params: LossParams, grad_cache: bool) -> tuple[int, int]:
    """(encoder passes with a graph, passes without one) over each example of an optimizer step."""
    p = params.encoder_passes()
    return p, p if grad_cache else 0


def planned_grad_cache(cfg: CellConfig, params: LossParams) -> bool:
    """Whether the cell's steps run GradCache as configured (an out-of-memory retry may add it)."""
    return cfg.train.grad_cache and isinstance(params, ContrastParams) and cfg.train.contrast_set == "effective"


def train_cost(params: LossParams, model: ModelConfig, encoder_config: dict, tokens: int, grad_cache: bool) -> dict:
    """The cost metrics of a trained cell: passes per step and the FLOPs of `tokens` computed tokens."""
    trained, no_grad = passes(params, grad_cache)
    pt = per_token(encoder_config, model)
    return {"train_forward_passes": trained + no_grad, "train_tokens": tokens,
            "train_flops": float(tokens * (trained * pt.trained + no_grad * pt.no_grad))}


def compute_remark(arm_flops: float, ref_flops: float) -> str:
    """"" when the two trainings cost within MATCH_TOLERANCE of each other, else what the verdict adds."""
    if not (arm_flops > 0 and ref_flops > 0) or abs(arm_flops / ref_flops - 1) <= MATCH_TOLERANCE:
        return ""
    return f"not compute-matched (arm {arm_flops / ref_flops:.1f}x the reference's FLOPs)"
