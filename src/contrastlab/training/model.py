"""The classifier every family fine-tunes: a pretrained encoder, dropout, and a linear head on [CLS].

`Classifier.encode` runs the encoder; `Classifier.head` applies dropout + linear to a [CLS]
vector, so a family can reuse one encoder pass and draw the head's dropout twice (one-stage
R-Drop). `freeze` chooses what trains; `load_trained` rebuilds a finished cell's model.
peft is imported only for LoRA cells.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from contrastlab.plan.config import ConfigError, LoraConfig, ModelConfig
from contrastlab.plan.hfconfig import model_location


def from_pretrained(loader, name: str, **kwargs):
    """`loader.from_pretrained` of model.name, with a hub model the job cannot fetch (offline and not
    cached, no network, no such repo) as one ConfigError that says what to do, not a traceback."""
    source, location = model_location(name)
    try:
        return loader.from_pretrained(location, **kwargs)
    except OSError as e:
        if source != "hub":
            raise
        why = ("HF_HUB_OFFLINE=1 and it is not in the local cache" if os.environ.get("HF_HUB_OFFLINE") == "1"
               else str(e).splitlines()[0])
        raise ConfigError(f"model.name {name!r} cannot be loaded: {why}. Download it once where the hub is reachable "
                          f"(python -c \"from transformers import AutoModel, AutoTokenizer; AutoTokenizer.from_pretrained("
                          f"{name!r}); AutoModel.from_pretrained({name!r})\") with the same HF_HOME, or set model.name "
                          f"to a local directory") from None


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return from_pretrained(AutoTokenizer, name)


def find_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's list of transformer blocks (BERT and DeBERTa keep it at `encoder.layer`)."""
    n = encoder.config.num_hidden_layers
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"cannot find the {n} transformer layers of {type(encoder).__name__}")


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int, head_dropout: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(head_dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    @property
    def num_layers(self) -> int:
        return self.encoder.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_hidden_states: bool = False):
        """input_ids, attention_mask: [B, T] -> HF output with last_hidden_state [B, T, D]
        (and hidden_states, L+1 tensors, when asked; see contrastlab.objectives.layers for the index convention)."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                            output_hidden_states=output_hidden_states)

    def head(self, cls: torch.Tensor) -> torch.Tensor:
        """cls [B, D] -> logits [B, C]; dropout is active in train mode, so two calls give two views."""
        return self.classifier(self.dropout(cls))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(input_ids, attention_mask).last_hidden_state[:, 0])


def build_classifier(cfg: ModelConfig, num_labels: int, attn_implementation: str | None = "sdpa") -> Classifier:
    """Pretrained encoder + fresh head, with the trainable parameters chosen (see `freeze`); a job
    gets it from contrastlab.training.jobmodel, which first checks the cell against the model (fits.py)."""
    from transformers import AutoModel

    try:
        encoder = from_pretrained(AutoModel, cfg.name, attn_implementation=attn_implementation)
    except (ValueError, ImportError):  # architectures without SDPA (DeBERTa-v2) use their own kernel
        encoder = from_pretrained(AutoModel, cfg.name)
    if cfg.lora is not None:
        encoder = _wrap_lora(encoder, cfg.lora)
    model = Classifier(encoder, num_labels, cfg.head_dropout)
    freeze(model, cfg)
    return model


def _wrap_lora(encoder: nn.Module, lora: LoraConfig) -> nn.Module:
    # peft wraps only the encoder; the head lives outside it, so it can never be left frozen
    # (the reference's peft call without a task type froze the new classifier).
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    target = lora.target_modules or _default_lora_targets(encoder)
    names = [n for n, _ in encoder.named_modules()]
    missing = [t for t in target if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:  # the DAG build checks this when it can read the weights' names; peft's own error is long
        linear = sorted({n.rpartition(".")[2] for n, m in encoder.named_modules() if isinstance(m, nn.Linear)})
        raise ConfigError(f"model.lora.target_modules: {', '.join(map(repr, missing))} is not a module of the "
                          f"encoder (its linear modules: {', '.join(linear)})")
    peft_cfg = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=target)
    return get_peft_model(encoder, peft_cfg)


def _default_lora_targets(encoder: nn.Module) -> list[str]:
    names = {n.rsplit(".", 1)[-1] for n, _ in encoder.named_modules()}
    for candidate in (["query_proj", "value_proj"], ["query", "value"]):  # DeBERTa, BERT
        if set(candidate) <= names:
            return candidate
    raise ValueError("model.lora.target_modules must be set for this architecture")


def freeze(model: Classifier, cfg: ModelConfig) -> None:
    """Only the top `trainable_layers` encoder layers (or the LoRA weights) and the head train."""
    for p in model.encoder.parameters():
        p.requires_grad = False
    if cfg.lora is not None:
        for n, p in model.encoder.named_parameters():
            p.requires_grad = "lora_" in n
    else:
        layers = find_layers(model.encoder)
        for layer in list(layers)[len(layers) - cfg.trainable_layers:] if cfg.trainable_layers else []:
            for p in layer.parameters():
                p.requires_grad = True
    for p in [*model.dropout.parameters(), *model.classifier.parameters()]:
        p.requires_grad = True


def trainable_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Only what trained: the head, the unfrozen layers or the LoRA weights, any loss-side heads."""
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    return {n: t.detach().cpu().contiguous() for n, t in module.state_dict().items() if n in names}


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


MODEL_PREFIX = "model."  # weights.safetensors: the classifier's tensors; the objective's are "objective.*"


def load_trained(cfg: ModelConfig, weights: str | Path, num_labels: int, device,
                 attn_implementation: str | None = "sdpa") -> Classifier:
    """A finished cell's classifier: the pretrained encoder with the trained tensors loaded on top."""
    from safetensors.torch import load_file

    model = build_classifier(cfg, num_labels, attn_implementation).to(device)
    trained = {k.removeprefix(MODEL_PREFIX): v for k, v in load_file(str(weights), device=str(device)).items()
               if k.startswith(MODEL_PREFIX)}
    unknown = set(trained) - set(model.state_dict())
    if unknown:
        raise ValueError(f"{weights} holds weights this model does not have, e.g. {sorted(unknown)[0]}")
    model.load_state_dict(trained, strict=False)
    return model.eval()
