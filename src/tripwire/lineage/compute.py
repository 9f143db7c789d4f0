"""Training compute from a model config: 6·N·D, dense and mixture-of-experts. Pure.

N is the parameter count the forward pass uses per token (for a mixture of experts: the active
parameters, the ``num_experts_per_tok`` routed experts plus shared ones; for a dense model: all of
them), D the training tokens. Embeddings and the output head are counted: the estimate errs high,
as compute thresholds ask. The formula and its limits are in docs/policies.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tripwire.sources.parsed import MAX_CONFIG_BYTES, read_limited

FLOP_PER_PARAM_TOKEN = 6
"""Forward (2) and backward (4) FLOP per parameter per training token."""

_UNGATED_MLP = frozenset({"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "bert"})
"""Model types whose MLP has two matrices (up, down), not three (gate, up, down)."""

_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
"""Config keys for the number of routed experts: Mixtral, Qwen-MoE/OLMoE, DeepSeek, DBRX-like."""


class ParameterCount(BaseModel):
    """A model's parameters, from its ``config.json``."""

    model_config = ConfigDict(frozen=True)

    total: int
    """Every parameter (all experts)."""
    active: int
    """Parameters used per token: equal to ``total`` for a dense model."""
    experts: int | None = None
    """Routed experts per MoE layer (None: dense)."""
    experts_per_token: int | None = None
    """Routed experts each token goes through."""


def _int(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def count_parameters(config: Mapping[str, Any]) -> ParameterCount | None:
    """Total and active parameters of a decoder-only transformer described by ``config``
    (Hugging Face ``config.json``), or None when the config lacks the sizes needed.

    Counted per layer: attention (q and o at ``heads x head_dim``, k and v at
    ``kv_heads x head_dim``, no biases), the MLP (gate, up and down; up and down for GPT-2-like
    types), and two norms; plus the token embeddings, the final norm and the output head (unless
    tied). MoE layers hold ``experts`` routed MLPs of ``moe_intermediate_size`` (else
    ``intermediate_size``), a router (``hidden x experts``) and any shared experts; DeepSeek's
    ``first_k_dense_replace`` leading layers are dense.
    """
    text = config.get("text_config")
    if isinstance(text, Mapping):  # multimodal wrappers keep the language model here
        config = text
    hidden = _int(config, "hidden_size", "n_embd", "d_model")
    layers = _int(config, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _int(config, "vocab_size")
    heads = _int(config, "num_attention_heads", "n_head")
    if not hidden or not layers or not vocab or not heads:
        return None
    kv_heads = _int(config, "num_key_value_heads") or heads
    head_dim = _int(config, "head_dim") or hidden // heads
    ffn = _int(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    gated = str(config.get("model_type", "")) not in _UNGATED_MLP
    matrices = 3 if gated else 2

    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    norms = 2 * hidden
    dense_mlp = matrices * hidden * ffn

    experts = _int(config, *_EXPERT_KEYS)
    per_token = _int(config, "num_experts_per_tok", "moe_top_k")
    moe = bool(experts and experts > 1 and per_token)
    if moe:
        assert experts is not None and per_token is not None
        expert_ffn = _int(config, "moe_intermediate_size") or ffn
        expert = matrices * hidden * expert_ffn
        shared = _int(config, "n_shared_experts") or 0
        shared_mlp = shared * expert
        shared_ffn = _int(config, "shared_expert_intermediate_size")
        if shared_ffn:  # Qwen-MoE: one shared expert of its own size, with a 1-wide gate
            shared_mlp += matrices * hidden * shared_ffn + hidden
        router = hidden * experts
        dense_layers = min(_int(config, "first_k_dense_replace") or 0, layers)
        moe_layers = layers - dense_layers
        layer_fixed = attention + norms
        total_layers = dense_layers * (layer_fixed + dense_mlp) + moe_layers * (
            layer_fixed + router + shared_mlp + experts * expert
        )
        active_layers = dense_layers * (layer_fixed + dense_mlp) + moe_layers * (
            layer_fixed + router + shared_mlp + min(per_token, experts) * expert
        )
    else:
        total_layers = active_layers = layers * (attention + norms + dense_mlp)

    tied = bool(config.get("tie_word_embeddings", True))
    outside = vocab * hidden * (1 if tied else 2) + hidden
    return ParameterCount(
        total=total_layers + outside,
        active=active_layers + outside,
        experts=experts if moe else None,
        experts_per_token=per_token if moe else None,
    )


def estimate_flop(active_parameters: int | None, tokens: int | None) -> float | None:
    """6·N·D training FLOP, or None when either is unknown."""
    if active_parameters is None or tokens is None:
        return None
    return float(FLOP_PER_PARAM_TOKEN * active_parameters * tokens)


def parameters_of_folder(folder: Path) -> ParameterCount | None:
    """``count_parameters`` of a checkpoint folder's ``config.json`` (None when absent or not
    readable: compute then stays unestimated, it never fails a checkpoint)."""
    path = folder / "config.json"
    try:
        data = json.loads(read_limited(path, path.stat().st_size, MAX_CONFIG_BYTES))
    except Exception:  # config problems are reported by discovery, not here
        return None
    return count_parameters(data) if isinstance(data, dict) else None
