"""Commands that load no model start without importing torch, lm-eval, transformers, datasets,
Celery or scipy's optimizers: they are imported where a model is scored, a job is sent or an
interval is inverted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lm_eval", "transformers", "datasets", "celery", "scipy.optimize")


def imported_by(code: str) -> list[str]:
    """The heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize(
    "code",
    [
        "import tripwire.cli",
        "import tripwire.status",
        "import tripwire.reports.build",
        "import tripwire.audit",
        "from tripwire.web.app import create_app",
    ],
)
def test_importing_a_command_path_imports_no_model_or_queue_library(code: str) -> None:
    assert imported_by(code) == []


def test_status_runs_without_them(tmp_path: pytest.TempPathFactory) -> None:
    code = (
        "import os, sys\n"
        f"os.environ['TRIPWIRE_HOME'] = {str(tmp_path)!r}\n"
        "sys.argv = ['tripwire', 'status', '--json']\n"
        "from tripwire.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert imported_by(code) == []
