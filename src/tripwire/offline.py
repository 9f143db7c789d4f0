"""Keep the Hugging Face libraries off the network, unless hub access is allowed.

Tripwire never downloads weights at run time, and by default no data either: everything comes
from the local Hugging Face cache (``HF_HOME``). These variables must be set before
transformers, datasets or lm-eval are imported, so every entry point calls ``enforce_offline``
first. ``TRIPWIRE_ALLOW_HUB=1`` (in the environment or ``.env``) lets lm-eval fetch built-in
benchmark data: then the variables are set to ``0``, whatever the environment (or an image)
set them to, so the setting always means what it says.
"""

from __future__ import annotations

import os

OFFLINE_VARIABLES = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_EVALUATE_OFFLINE",
)


def hub_allowed() -> bool:
    """``TRIPWIRE_ALLOW_HUB`` from the environment, or else ``.env`` (as the settings read it)."""
    if "TRIPWIRE_ALLOW_HUB" in os.environ:
        return os.environ["TRIPWIRE_ALLOW_HUB"].strip().lower() in ("1", "true", "yes", "on")
    from tripwire.settings import Settings

    try:
        return Settings().allow_hub
    except ValueError:  # an invalid .env: the command that reads the settings says so
        return False


def enforce_offline() -> None:
    """Set the offline variables, or clear them when the user allowed hub access."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if hub_allowed():
        for name in OFFLINE_VARIABLES:
            os.environ[name] = "0"
        return
    for name in OFFLINE_VARIABLES:
        os.environ.setdefault(name, "1")
