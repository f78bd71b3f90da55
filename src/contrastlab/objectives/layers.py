"""The one layer-index convention of contrastlab, used for hidden states and attentions alike.

A *layer* in any config or table is a 0-based index of an encoder (transformer) layer:
0 is the first transformer layer, L-1 the last; negative values count from the end (-1 = last).
The embedding output is not a layer. Hugging Face's `hidden_states` tuple has L+1 entries
(index 0 = embeddings), its `attentions` tuple L entries, so:

    layer l  ->  hidden_states[l + 1]   and   attentions[l]

Both outputs of layer l come from the same transformer block. The reference code mixed the
two tuples and was off by one; every lookup here goes through these two functions.
"""
from __future__ import annotations


def resolve_layer(layer: int, num_layers: int) -> int:
    """Normalise `layer` (negative from the end) to 0..num_layers-1, or raise naming the range."""
    if not -num_layers <= layer < num_layers:
        raise ValueError(f"layer {layer} is out of range for an encoder with {num_layers} layers "
                         f"(valid: 0..{num_layers - 1}, or -{num_layers}..-1 from the end)")
    return layer % num_layers


def hidden_state_index(layer: int, num_layers: int) -> int:
    """Index into HF `hidden_states` (embeddings at 0) of the output of encoder layer `layer`."""
    return resolve_layer(layer, num_layers) + 1


def attention_index(layer: int, num_layers: int) -> int:
    """Index into HF `attentions` (and into `encoder.layer`) of encoder layer `layer`."""
    return resolve_layer(layer, num_layers)


def check_layers(layers, num_layers: int) -> list[int]:
    """Each layer normalised to 0..num_layers-1; ValueError naming the range for one outside it."""
    return [resolve_layer(layer, num_layers) for layer in layers]


def lowest_trainable(num_layers: int, trainable_layers: int, lora: bool) -> int:
    """The lowest encoder layer with trainable parameters (num_layers when none trains): LoRA
    adapts every layer; otherwise the top `trainable_layers` train."""
    return 0 if lora else num_layers - min(trainable_layers, num_layers)


def frozen_reads(layers, num_layers: int, trainable_layers: int, lora: bool) -> list[int]:
    """The layers among `layers` whose output no trainable parameter feeds: the output of layer l
    depends on layers 0..l only, so a loss on it gets a gradient iff some layer <= l trains."""
    low = lowest_trainable(num_layers, trainable_layers, lora)
    return sorted({l for l in check_layers(layers, num_layers) if l < low})
