"""Training FLOPs per token of a transformer encoder, estimated from its config.json alone.

The estimate of Kaplan et al. (2020): a forward pass costs 2 N FLOPs per token and its backward
4 N, N the encoder's matrix weights (per layer Q, K, V, O: 4 d^2; the feed-forward: 2 d ff;
embeddings, biases, norms, the attention's T^2 scores, DeBERTa's projections of its relative-position
embeddings (once per pass, not per token) and the head are left out). Frozen layers
are counted honestly: the backward runs only down to the lowest layer with a trainable weight,
and computes weight gradients only for trainable weights, so a pass that trains the top T of L
layers costs 2 N + 4 N T / L, not 6 N. LoRA adapts every layer: the input gradients run through
all of them, the weight gradients only for the adapters (r (d + d) per adapted d x d matrix).
On DeBERTa-v3-base (top 4 layers or LoRA, max_len 256 or 510) this is 0.75-0.78 of what torch's
flop counter counts per training example (benchmarks/paper_cost.py: the attention scores are the
rest), the same share for every family, so ratios between cells hold to a few percent.
Torch-free: the DAG build uses it to match budgets.
"""
from __future__ import annotations

from dataclasses import dataclass

from contrastlab.plan.config import ConfigError, ModelConfig

DEFAULT_LORA_MODULES = 2  # contrastlab.training.model adapts the query and value projections unless target_modules says


@dataclass(frozen=True)
class PerToken:
    """FLOPs per token of one encoder pass: with a graph and its backward (trained), or without (no_grad)."""
    trained: float
    no_grad: float


def layer_weights(config: dict) -> int:
    """Matrix weights of one encoder layer: 4 d^2 (attention) + 2 d ff (feed-forward)."""
    try:
        d, ff = config["hidden_size"], config["intermediate_size"]
    except KeyError as e:
        raise ConfigError(f"the model's config.json has no {e.args[0]}: its FLOPs cannot be estimated") from None
    return 4 * d * d + 2 * d * ff


def num_layers(config: dict) -> int:
    n = config.get("num_hidden_layers", config.get("n_layers"))
    if n is None:
        raise ConfigError("the model's config.json has no num_hidden_layers: its FLOPs cannot be estimated")
    return n


def per_token(config: dict, model: ModelConfig) -> PerToken:
    """FLOPs per token of one encoder pass of `model` (its trainable layers or LoRA) on the encoder `config`."""
    n_layers, p = num_layers(config), layer_weights(config)
    n = n_layers * p
    if model.lora is not None:
        modules = len(model.lora.target_modules or []) or DEFAULT_LORA_MODULES
        adapters = n_layers * modules * model.lora.r * 2 * config["hidden_size"]
        forward = 2 * (n + adapters)
        return PerToken(trained=forward + 2 * (n + adapters) + 2 * adapters, no_grad=forward)  # input grads, adapter grads
    trained_layers = min(model.trainable_layers, n_layers)
    return PerToken(trained=2 * n + 4 * trained_layers * p, no_grad=2 * n)
