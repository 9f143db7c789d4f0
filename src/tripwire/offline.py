"""Keep the Hugging Face libraries off the network.

Tripwire never downloads weights or data at run time. These variables must be set before
transformers, datasets or lm-eval are imported, so every entry point calls ``enforce_offline``
first. A user with hub access who wants built-in benchmarks fetched can set
``TRIPWIRE_ALLOW_HUB=1``.
"""

from __future__ import annotations

import os

OFFLINE_VARIABLES = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_EVALUATE_OFFLINE",
)


def enforce_offline() -> None:
    """Set the offline variables unless the user opted in to hub access."""
    if os.environ.get("TRIPWIRE_ALLOW_HUB") == "1":
        return
    for name in OFFLINE_VARIABLES:
        os.environ.setdefault(name, "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
