"""Process-wide settings, read from ``TRIPWIRE_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

SECRETS_DIR = "/run/secrets"
"""Where secret files are read from (Docker and compose ``secrets``): a file named like a
variable (``tripwire_database_url``) sets that setting when the environment does not.
``TRIPWIRE_SECRETS_DIR`` points elsewhere."""


class Settings(BaseSettings):
    """Where Tripwire keeps its state and how it runs work."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_", env_file=".env", extra="ignore")

    home: Path = Path(".tripwire")
    """Folder for the default SQLite database, caches and reports."""
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<home>/tripwire.db``."""
    broker_url: str | None = None
    """Celery broker, e.g. ``redis://host:6379/0``; unset means the embedded in-process worker."""
    device: str = "cpu"
    """torch device the runner evaluates on (``cpu``, ``cuda``, ``cuda:0``)."""
    batch_size: int = 32
    """lm-eval batch size."""
    allow_pickle: bool = False
    """Accept pickle (``*.bin``/``*.pt``) weights. Off: pickle can run code when loaded."""
    response_cache: bool = True
    """Reuse model answers computed for the same weights (``tripwire.runner.responses``): keyed
    by the checkpoint's content, the task's configuration and the request, never by path."""
    response_cache_max_gb: float = Field(default=5.0, gt=0)
    """Bound of ``<home>/cache/responses``; the checkpoints used longest ago are evicted first."""
    allow_hub: bool = False
    """Let lm-eval fetch built-in benchmark data from the Hugging Face hub (``tripwire.offline``);
    off, everything comes from the local cache (``HF_HOME``)."""
    quiet_period_s: float = 30.0
    """A checkpoint with no ready marker and no shard index is taken after this long unchanged."""
    scan_interval_s: float = 10.0
    """Periodic rescan of watched folders, a safety net behind file-system events."""
    reconcile_interval_s: float | None = Field(default=None, gt=0)
    """How often a watcher re-sends lost work, in a thread of its own (default: the scan
    interval)."""
    policy: Path = Path("triggers/default.yaml")
    proxy_suite: Path = Path("evals/proxy.yaml")
    deep_suites: list[Path] = Field(default_factory=lambda: [Path("evals/deep.yaml")])
    report_dir: Path | None = None
    """Where report pages are written; default ``<home>/reports``."""
    lease_s: float = Field(default=300.0, gt=0)
    """A claimed job becomes someone else's to take after this long without a heartbeat."""
    heartbeat_s: float = Field(default=30.0, gt=0)
    """How often a running job renews its lease (well below ``lease_s``)."""
    resend_after_s: float = Field(default=60.0, gt=0)
    """The reconciler re-sends a pending job that has not started this long after it was sent."""
    max_attempts: int = Field(default=3, ge=1)
    """Claims of a job before it is failed for good (stops kill-redeliver loops)."""
    retry_backoff_s: float = Field(default=30.0, ge=0)
    """Pause before retrying a job after a transient error (I/O, database, broker); doubled
    at each further attempt."""
    retry_backoff_max_s: float = Field(default=600.0, ge=0)
    """Longest pause between two attempts; keep it well below ``visibility_timeout_s``."""
    visibility_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    """Redis redelivers an unacknowledged task after this long; set above the longest
    evaluation. Every process on one Redis must use the same value (the shortest wins)."""
    task_time_limit_s: float = Field(default=5 * 3600.0, gt=0)
    """Hard limit on one task; its pool child is killed past it."""
    secret_key: SecretStr | None = None
    """Signs the web app's session cookies. Unset: a random key generated once and kept in
    ``<home>/secret_key`` (mode 0600). Replicas behind one load balancer need the same key."""
    session_max_age_s: int = Field(default=12 * 3600, gt=0)
    """A browser session ends this long after sign-in."""
    https_only: bool = False
    """TLS terminates in front of ``tripwire serve``: session cookies are marked ``Secure``."""
    api_url: str | None = None
    """The review app's base URL for ``tripwire review`` (default ``http://127.0.0.1:8000``)
    and ``tripwire gate`` (unset: the gate reads the database directly)."""
    token: SecretStr | None = None
    """The bearer token ``tripwire review`` and ``tripwire gate`` send to the API."""

    # ------------------------------------------------------------ notifications (issue #8)
    notify_config: Path | None = None
    """The notification channels file (YAML); unset, nothing is sent (rows wait in the outbox)."""
    notify_failures: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Channels told when a job fails for good (comma-separated names); empty: none."""
    notify_backoff_s: float = Field(default=30.0, gt=0)
    """Pause after a notification's first failed attempt; doubled at each further one."""
    notify_backoff_max_s: float = Field(default=3600.0, gt=0)
    """Longest pause between two attempts to deliver a notification."""
    notify_max_attempts: int = Field(default=30, ge=1)
    """Attempts before a notification is marked failed (30 with the default backoff: about
    23 hours)."""
    notify_give_up_after_s: float = Field(default=24 * 3600.0, gt=0)
    """A notification still undelivered this long after it was queued is marked failed."""
    notify_claim_s: float = Field(default=300.0, gt=0)
    """A sender's claim on a notification; past it (the sender died while sending) another
    sender sends it again, with the same idempotency key."""
    review_overdue_h: float = Field(default=24.0, gt=0)
    """A critical or held decision without an acknowledge, approve or release review after
    this long is notified as overdue (once)."""
    public_url: str | None = None
    """Base URL of the review app as people reach it (``https://tripwire.example.org``); links
    in notifications point there. Unset: no links."""

    # ------------------------------------------------------------ the sealed ledger (issue #9)
    ledger_signing: bool = True
    """Sign every ledger entry and anchor each new head outside the database. Off: only the
    hash chain, which anyone able to write the database can recompute."""
    ledger_key: Path | None = None
    """The Ed25519 private key (PEM) that signs ledger entries. Unset: ``<home>/ledger_key``,
    generated once (mode 0600). Every process that writes decisions, evaluations or reviews
    needs the same key; keep a copy outside the database host."""
    ledger_public_keys: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """Further trusted public keys (PEM files, comma-separated): an auditor's copy of the
    ledger key's public half, or keys the ledger was signed with before a rotation."""
    ledger_anchor: str | None = None
    """Where signed heads are appended: a file (JSON lines) or an fsspec URL prefix
    (``s3://bucket/tripwire/anchor``). Unset: ``<home>/ledger-anchor.jsonl``."""

    # ------------------------------------------------------------ intake (issue #11)
    webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key of ``POST /v1/checkpoints`` (compose secret ``tripwire_webhook_secret``).
    Unset: the endpoint answers 404."""
    intake_roots: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Where announced checkpoints may live (comma-separated folders or URI prefixes such as
    ``s3://bucket/checkpoints``); an announced URI outside them is refused (403)."""
    webhook_max_bytes: int = Field(default=256 * 1024, gt=0)
    """Largest webhook body accepted (bytes); more is refused (413)."""
    webhook_max_age_s: float = Field(default=300.0, gt=0)
    """A webhook request whose timestamp is further than this from the server's clock (s) is
    refused as stale (401)."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint for ``s3://`` sources (MinIO, Ceph, moto); unset: AWS."""
    object_full_sweep_every: int = Field(default=360, ge=0)
    """Every this many scans an object-store source lists its runs from the start, to take
    folders whose names sorted before its cursor when they landed (0: never)."""
    object_cache_bytes: int = Field(default=200 * 1024**3, gt=0)
    """Bound of the local cache of checkpoints downloaded from object stores (bytes); least
    recently used checkpoints are evicted past it."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``.env``, then secret files (when their folder
        exists: compose mounts ``secrets`` there)."""
        secrets_dir = Path(os.environ.get("TRIPWIRE_SECRETS_DIR", SECRETS_DIR))
        sources = [init_settings, env_settings, dotenv_settings]
        if secrets_dir.is_dir():
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        return tuple(sources)

    @field_validator("notify_failures", "ledger_public_keys", "intake_roots", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'tripwire.db').resolve()}"

    def response_cache_dir(self) -> Path:
        return self.home / "cache" / "responses"

    def resolved_report_dir(self) -> Path:
        return self.report_dir or self.home / "reports"


def shown_url(url: str) -> str:
    """``url`` without its user name and password, for messages and logs."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return url.split("?", 1)[0]
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return parts._replace(netloc=host, query="").geturl()


COMPOSE_HOSTS = ("postgres", "redis")
"""Service names of docker-compose.yml: host names only inside compose's network."""


def compose_hint(url: str) -> str:
    """A hint when ``url`` names a compose service from outside compose, else empty."""
    host = urlsplit(url).hostname
    if host not in COMPOSE_HOSTS:
        return ""
    return (
        f"; {host!r} is a docker compose service name, which resolves only inside compose: "
        "from this machine use 127.0.0.1 (or TRIPWIRE_PUBLISH_ADDRESS) with the published port"
    )
