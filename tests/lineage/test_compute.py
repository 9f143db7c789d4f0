"""6·N·D from config.json: dense and mixture-of-experts counts against hand computations; the
forms a parent may be named in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tripwire.lineage import count_parameters, estimate_flop
from tripwire.sources.metadata import CheckpointMetadata

LLAMA_LIKE = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 100,
    "tie_word_embeddings": False,
}
MIXTRAL_LIKE = {
    **LLAMA_LIKE,
    "model_type": "mixtral",
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
}


def test_a_dense_config_counts_attention_mlp_norms_embeddings_and_head() -> None:
    # head_dim 16; q,o: 64*4*16 = 4096 each; k,v: 64*2*16 = 2048 each -> 12288
    # mlp (gate, up, down): 3*64*128 = 24576; norms 2*64 = 128 -> 36992 per layer, x2 = 73984
    # embeddings 100*64 and an untied head 100*64 = 12800; final norm 64 -> 86848
    count = count_parameters(LLAMA_LIKE)
    assert count is not None
    assert count.total == count.active == 86_848
    assert count.experts is None
    assert estimate_flop(count.active, 1_000_000) == 6 * 86_848 * 1_000_000


def test_a_mixture_of_experts_records_total_and_active_parameters() -> None:
    # per layer: attention 12288 + norms 128 + router 64*8 = 512, experts 24576 each
    # total: 2 * (12288 + 128 + 512 + 8*24576) + 12864 = 2*209536 + 12864 = 431936
    # active (2 of 8 experts): 2 * (12288 + 128 + 512 + 2*24576) + 12864 = 2*62080 + 12864 = 137024
    count = count_parameters(MIXTRAL_LIKE)
    assert count is not None
    assert count.total == 431_936
    assert count.active == 137_024
    assert (count.experts, count.experts_per_token) == (8, 2)
    assert estimate_flop(count.active, 10) == 6 * 137_024 * 10


def test_deepseek_keys_shared_experts_and_leading_dense_layers() -> None:
    config = {
        **LLAMA_LIKE,
        "model_type": "deepseek_v2",
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "num_experts_per_tok": 1,
        "moe_intermediate_size": 32,
        "first_k_dense_replace": 1,
    }
    # layer 0 dense: 12288 + 128 + 24576 = 36992
    # layer 1 moe: 12288 + 128 + router 256 + shared 3*64*32 = 6144 + experts 4*6144 (total)
    count = count_parameters(config)
    assert count is not None
    assert count.total == 36_992 + (12_288 + 128 + 256 + 6_144 + 4 * 6_144) + 12_864
    assert count.active == 36_992 + (12_288 + 128 + 256 + 6_144 + 1 * 6_144) + 12_864


def test_a_config_without_sizes_gives_no_estimate() -> None:
    assert count_parameters({"model_type": "llama"}) is None
    assert estimate_flop(None, 10) is None


def test_parents_are_content_hashes_uris_or_absolute_paths_never_traversals() -> None:
    ok = ["sha256:" + "a" * 64, "s3://ckpts/base/step-0001000", "/mnt/ckpts/base/step-1"]
    assert CheckpointMetadata(parents=ok).parents == ok
    for bad in ["relative/path", "/mnt/ckpts/../etc", "s3://b/../x", "http://example.org/x", ""]:
        with pytest.raises(ValidationError, match="parents"):
            CheckpointMetadata(parents=[bad])
