"""Train the demo's tiny GPT-2 on CPU and write checkpoints the way a trainer does.

The model reads one character per token. It is trained on the synthetic skills of
``tripwire.demo.skills`` with the loss on the answer characters only, so that within a minute on
two cores the proxy skills climb from chance (25% on 4-choice items) to well above it, some
earlier than others, and the deep skill follows more slowly.

Each checkpoint is written to ``<out_dir>/<run>/.tmp-step-<N>/``, renamed with ``os.replace`` to
``<out_dir>/<run>/step-<N>/``, then given a ``tripwire.json`` sidecar (run, step, stage, tokens
seen, training FLOP) and, last of all, an empty ``READY`` marker. A watcher that waits for
``READY`` never sees a half-written checkpoint.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripwire.demo.skills import ALPHABET, SKILLS, training_examples

__all__ = [
    "DEFAULT_SKILL_WEIGHTS",
    "DEMO_SAVE_EVERY_STEPS",
    "DEMO_STEPS",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "READY_MARKER",
    "SIDECAR_NAME",
    "UNK_TOKEN",
    "build_tokenizer",
    "checkpoint_dir",
    "train_demo_model",
]

#: Default length of the demo's training run and its checkpoint interval: 8 checkpoints, at steps
#: 0, 150, ..., 1050 (about 40 s on two idle cores).
DEMO_STEPS = 1050
DEMO_SAVE_EVERY_STEPS = 150

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)

READY_MARKER = "READY"
SIDECAR_NAME = "tripwire.json"

#: Relative share of each batch given to each skill. Successor and comparison are learned within a
#: few hundred steps anyway; addition gets the largest share so that it reliably climbs to 80-100%
#: whatever the seed. Subtraction (the deep skill) is learned more slowly.
DEFAULT_SKILL_WEIGHTS: Mapping[str, float] = {
    "successor": 0.5,
    "comparison": 0.75,
    "addition": 2.0,
    "subtraction": 1.0,
}

CheckpointCallback = Callable[[Path, int], None]


def build_tokenizer(model_max_length_tokens: int = 32) -> Any:
    """A character-level ``PreTrainedTokenizerFast``: one token per character of ``ALPHABET``.

    Built with the ``tokenizers`` library (a WordLevel model over single characters and a
    pre-tokenizer that isolates every character); ``<pad>`` pads, ``<eos>`` ends (and begins)
    sequences, ``<unk>`` stands for any character outside the alphabet. Nothing is added around
    encoded text, so ``"12+34="`` is exactly six tokens.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    fast_tokenizer_class: Any = PreTrainedTokenizerFast  # transformers' own types are partial
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *ALPHABET))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return fast_tokenizer_class(
        tokenizer_object=core,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length_tokens,
        clean_up_tokenization_spaces=False,
    )


def checkpoint_dir(out_dir: Path, run: str, step: int) -> Path:
    """Where ``train_demo_model`` puts the finished checkpoint of ``run`` at ``step``."""
    return Path(out_dir) / run / f"step-{step}"


@dataclass
class _Batches:
    """Every training line of every skill, encoded once, and a seeded batch sampler."""

    input_ids: Any  # LongTensor [n_lines, seq_len], right-padded
    labels: Any  # LongTensor [n_lines, seq_len], -100 except on answer tokens and <eos>
    n_tokens: Any  # LongTensor [n_lines], real (non-pad) tokens per line
    skill_ranges: list[tuple[int, int]]  # [start, end) of each skill's lines
    skill_probs: Any  # FloatTensor [n_skills]


def _encode_corpus(
    vocab: Mapping[str, int], skill_weights: Mapping[str, float], seq_len_tokens: int
) -> _Batches:
    import torch

    pad_id, eos_id = vocab[PAD_TOKEN], vocab[EOS_TOKEN]
    rows: list[list[int]] = []
    label_rows: list[list[int]] = []
    ranges: list[tuple[int, int]] = []
    weights: list[float] = []
    for name, weight in skill_weights.items():
        if weight <= 0:
            continue
        start = len(rows)
        for question, answer in training_examples(name):
            q_ids = [vocab[c] for c in question]
            a_ids = [vocab[c] for c in answer] + [eos_id]
            ids = q_ids + a_ids
            if len(ids) > seq_len_tokens:
                raise ValueError(f"{name}: {question + answer!r} is longer than the model context")
            rows.append(ids)
            label_rows.append([-100] * len(q_ids) + a_ids)
        ranges.append((start, len(rows)))
        weights.append(weight)
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in label_rows], dtype=torch.long)
    n_tokens = torch.tensor([len(r) for r in rows], dtype=torch.long)
    probs = torch.tensor(weights, dtype=torch.float64)
    return _Batches(input_ids, labels, n_tokens, ranges, probs / probs.sum())


def _sample_batch(batches: _Batches, batch_size: int, generator: Any) -> tuple[Any, Any, int]:
    """Draw a batch: skills in proportion to their weights, lines uniformly within a skill."""
    import torch

    skill_of_row = torch.multinomial(batches.skill_probs, batch_size, True, generator=generator)
    starts = torch.tensor([s for s, _ in batches.skill_ranges])[skill_of_row]
    sizes = torch.tensor([e - s for s, e in batches.skill_ranges])[skill_of_row]
    offsets = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * sizes).long()
    index = starts + offsets
    tokens = int(batches.n_tokens[index].sum())
    return batches.input_ids[index], batches.labels[index], tokens


def _learning_rate(step: int, *, peak: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def _write_json_atomically(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _save_checkpoint(
    model: Any,
    tokenizer: Any,
    run_dir: Path,
    *,
    run: str,
    step: int,
    tokens_seen: int,
    n_params: int,
) -> Path:
    """Write one checkpoint: temporary dir, rename, sidecar, then the READY marker."""
    tmp = run_dir / f".tmp-step-{step}"
    final = run_dir / f"step-{step}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_kwargs: dict[str, Any] = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        save_kwargs["safe_serialization"] = True  # transformers < 5; 5 writes safetensors only
    model.save_pretrained(tmp, **save_kwargs)
    tokenizer.save_pretrained(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_json_atomically(
        final / SIDECAR_NAME,
        {
            "run": run,
            "step": step,
            "stage": "pretrain",
            "tokens_seen": tokens_seen,
            "training_flop": 6.0 * n_params * tokens_seen,
        },
    )
    (final / READY_MARKER).touch()
    return final


def _save_steps(steps: int, save_every: int, first_save_step: int) -> list[int]:
    wanted = {first_save_step, steps, *range(save_every, steps + 1, save_every)}
    return sorted(s for s in wanted if 0 <= s <= steps)


def train_demo_model(
    out_dir: Path,
    *,
    run: str = "demo-run",
    steps: int = DEMO_STEPS,
    save_every: int = DEMO_SAVE_EVERY_STEPS,
    seed: int = 0,
    on_checkpoint: CheckpointCallback | None = None,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    batch_size: int = 256,
    learning_rate: float = 5e-3,
    warmup_steps: int = 50,
    weight_decay: float = 0.01,
    skill_weights: Mapping[str, float] | None = None,
    first_save_step: int = 0,
    n_threads: int = 2,
    overwrite: bool = False,
) -> list[Path]:
    """Train the demo model and write a checkpoint every ``save_every`` steps.

    Checkpoints are written at ``first_save_step`` (step 0 by default: the untrained model, near
    chance), at every multiple of ``save_every`` and at the last step, each to
    ``<out_dir>/<run>/step-<N>/`` (see the module docstring for the write protocol).
    ``on_checkpoint(path, step)`` is called after each one is complete, on this thread.

    Deterministic for a given seed and settings. Uses ``n_threads`` torch threads while it runs
    and restores the previous setting afterwards. Refuses to write into a run directory that
    already holds checkpoints unless ``overwrite`` is set, in which case they are deleted first.

    Returns the checkpoint directories in step order.
    """
    if steps < 0 or save_every <= 0:
        raise ValueError(f"need steps >= 0 and save_every > 0; got {steps=}, {save_every=}")
    weights = dict(skill_weights if skill_weights is not None else DEFAULT_SKILL_WEIGHTS)
    unknown = sorted(set(weights) - set(SKILLS))
    if unknown or not any(w > 0 for w in weights.values()):
        raise ValueError(f"skill_weights must name known skills with some weight > 0: {weights}")

    run_dir = Path(out_dir) / run
    existing = sorted(run_dir.glob("step-*")) if run_dir.exists() else []
    if existing and not overwrite:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints ({existing[0].name}, ...); "
            "choose another run name or pass overwrite=True"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    # Leftovers of an interrupted run, and with overwrite the old run's checkpoints, go first, so
    # that the run directory only ever holds this run's checkpoints.
    for stale in [*run_dir.glob(".tmp-step-*"), *(existing if overwrite else [])]:
        shutil.rmtree(stale)

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        seq_len_tokens = 32
        tokenizer = build_tokenizer(seq_len_tokens)
        vocab: dict[str, int] = tokenizer.get_vocab()
        pad_id = vocab[PAD_TOKEN]
        batches = _encode_corpus(vocab, weights, seq_len_tokens)
        config = GPT2Config(
            vocab_size=len(vocab),
            n_positions=seq_len_tokens,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model: Any = GPT2LMHeadModel(config)
        n_params = int(model.num_parameters())
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=learning_rate, betas=(0.9, 0.98), weight_decay=weight_decay
        )
        save_at = _save_steps(steps, save_every, first_save_step)
        written: list[Path] = []
        tokens_seen = 0

        def save(step: int) -> None:
            model.eval()
            path = _save_checkpoint(
                model,
                tokenizer,
                run_dir,
                run=run,
                step=step,
                tokens_seen=tokens_seen,
                n_params=n_params,
            )
            model.train()
            written.append(path)
            if on_checkpoint is not None:
                on_checkpoint(path, step)

        model.train()
        for step in range(steps + 1):
            if step in save_at:
                save(step)
            if step == steps:
                break
            lr = _learning_rate(
                step, peak=learning_rate, warmup_steps=warmup_steps, total_steps=steps
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            input_ids, labels, n_tokens = _sample_batch(batches, batch_size, generator)
            attention_mask = (input_ids != pad_id).long()
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            # Position t predicts token t + 1; only answer tokens (and <eos>) carry a label.
            loss: Any = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            tokens_seen += n_tokens
        return written
    finally:
        torch.set_num_threads(previous_threads)
