"""Served systems as subjects: an OpenAI-compatible endpoint scored like a checkpoint.

Risk belongs to the system, not only to the weights: a model behind retrieval or tools, served
as an endpoint, is registered with ``tripwire system add`` and then goes through the same loop
(proxy suite, decisions, deep suites, reports, reviews). Its identity is what was declared:
the endpoint, the model name, the API and a version label; a redeployment behind the same
name is a new subject only when its version says so, which is why the version is required to
change with what is served.

It is stored as a checkpoint whose path is the system's URI (``system+completions:<base
url>#...``) and whose content hash is ``system:<sha256 of the declaration>``. The runner scores
it through lm-eval's API models (``local-completions`` and ``local-chat-completions``): generative
tasks always, log-likelihood tasks on the completions API when the server returns prompt
log-probabilities (``echo`` with ``logprobs``) and a local tokenizer is given. The API key, if
any, comes from ``TRIPWIRE_SYSTEM_API_KEY`` at scoring time and is never stored.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEME = "system+"
API_KEY_ENV = "TRIPWIRE_SYSTEM_API_KEY"


class SystemSpec(BaseModel):
    """A served system as registered."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base_url: str
    """The API's base URL, up to ``/v1`` (``http://inference:8000/v1``)."""
    model: str = Field(min_length=1)
    """The model name the server expects in requests."""
    api: Literal["completions", "chat"] = "completions"
    version: str = Field(min_length=1)
    """What is served, as the operator names it (a deployment id, an image digest)."""
    tokenizer: str | None = None
    """A local tokenizer folder matching the served model: needed for log-likelihood tasks."""

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("base_url must be an http or https URL (http://host:8000/v1)")
        if parsed.query or parsed.fragment or "#" in value:
            raise ValueError("base_url takes no query or fragment")
        return value.rstrip("/")

    @property
    def content_hash(self) -> str:
        body = json.dumps(
            self.model_dump(include={"base_url", "model", "api", "version", "tokenizer"}),
            sort_keys=True,
        )
        return "system:" + hashlib.sha256(body.encode()).hexdigest()

    def uri(self) -> str:
        fields = {"model": self.model, "version": self.version}
        if self.tokenizer:
            fields["tokenizer"] = self.tokenizer
        return f"{SCHEME}{self.api}:{self.base_url}#{urlencode(fields)}"

    @classmethod
    def parse(cls, uri: str) -> SystemSpec:
        if not is_system(uri):
            raise ValueError(f"not a served system's URI: {uri}")
        api, _, rest = uri.removeprefix(SCHEME).partition(":")
        base_url, _, fragment = rest.partition("#")
        fields = dict(parse_qsl(fragment))
        return cls(
            base_url=base_url,
            api=api,
            model=fields.get("model", ""),
            version=fields.get("version", ""),
            tokenizer=fields.get("tokenizer"),
        )


def is_system(path: str) -> bool:
    return path.startswith(SCHEME)
