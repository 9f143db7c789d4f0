"""A small OpenAI-compatible server that serves a tiny transformers model for real.

``/v1/completions`` (prompts as text or token ids; greedy generation with stop strings;
``echo`` with ``logprobs`` returns every prompt token's log-probability and its top-1, as
vLLM and the OpenAI completions API do) and ``/v1/chat/completions`` (messages joined as
``role: content`` lines). Requests are counted, and an optional bearer token is checked.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel


class CompletionRequest(BaseModel):
    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int = 16
    temperature: float = 0.0
    stop: str | list[str] | None = None
    echo: bool = False
    logprobs: int | None = None
    seed: int | None = None


class ChatRequest(BaseModel):
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 0.0
    stop: str | list[str] | None = None
    seed: int | None = None


def served_model_app(checkpoint: Path, model_name: str, api_key: str | None = None) -> FastAPI:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint)).eval()
    lock = threading.Lock()
    app = FastAPI()
    app.state.requests = 0

    def check(authorization: str | None, name: str) -> None:
        if api_key is not None and authorization != f"Bearer {api_key}":
            raise HTTPException(401, "bad API key")
        if name != model_name:
            raise HTTPException(404, f"no model {name}")
        app.state.requests += 1

    def ids_of(prompt: str | list[int]) -> list[int]:
        return (
            tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if isinstance(prompt, str)
            else list(prompt)
        )

    def generate(ids: list[int], max_tokens: int, stop: list[str]) -> tuple[str, list[int]]:
        out: list[int] = []
        with torch.no_grad():
            for _ in range(max_tokens):
                window = (ids + out)[-model.config.n_positions :]
                logits = model(torch.tensor([window])).logits[0, -1]
                out.append(int(logits.argmax()))
                text = tokenizer.decode(out)
                if any(s and s in text for s in stop):
                    break
        text = tokenizer.decode(out)
        for s in stop:
            if s and s in text:
                text = text[: text.index(s)]
        return text, out

    def logprobs_of(ids: list[int]) -> dict[str, Any]:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        tokens = [tokenizer.decode([t]) for t in ids]
        token_logprobs: list[float | None] = [None]
        top: list[dict[str, float] | None] = [None]
        for i in range(1, len(ids)):
            token_logprobs.append(float(logp[i - 1, ids[i]]))
            best = int(logp[i - 1].argmax())
            top.append({tokenizer.decode([best]): float(logp[i - 1, best])})
        return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top}

    @app.post("/v1/completions")
    def completions(
        body: CompletionRequest, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        check(authorization, body.model)
        prompts: list[Any]
        if isinstance(body.prompt, str) or (body.prompt and isinstance(body.prompt[0], int)):
            prompts = [body.prompt]
        else:
            prompts = list(body.prompt)
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        choices = []
        with lock:
            for index, prompt in enumerate(prompts):
                ids = ids_of(prompt)
                text, new = generate(ids, body.max_tokens, stop)
                choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": "length"}
                if body.echo:
                    choice["text"] = tokenizer.decode(ids) + text
                    if body.logprobs is not None:
                        choice["logprobs"] = logprobs_of(ids + new[:1])
                choices.append(choice)
        return {
            "id": "cmpl-tiny",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": choices,
        }

    @app.post("/v1/chat/completions")
    def chat(body: ChatRequest, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        check(authorization, body.model)
        prompt = "".join(f"{m['role']}: {m['content']}\n" for m in body.messages) + "assistant: "
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        with lock:
            text, _ = generate(
                ids_of(prompt), body.max_completion_tokens or body.max_tokens or 16, stop
            )
        return {
            "id": "chat-tiny",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length",
                }
            ],
        }

    return app
