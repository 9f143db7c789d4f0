"""Docker health check for Flower: exit 0 if its /healthcheck answers, with the password."""

from __future__ import annotations

import base64
import sys
import urllib.request
from pathlib import Path

credentials = Path("/run/secrets/flower_basic_auth").read_text(encoding="utf-8").strip()
request = urllib.request.Request(
    "http://127.0.0.1:5555/healthcheck",
    headers={"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()},
)
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"flower did not answer: {exc}", file=sys.stderr)
    sys.exit(1)
