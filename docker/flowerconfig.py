"""Flower's settings in the compose deployment (``--conf``): a password from a secret file.

Flower can enqueue tasks and shut workers down, so it never runs without one. The file holds
``user:password`` (written by ``docker/make_secrets.py``).
"""

from pathlib import Path

SECRET = Path("/run/secrets/flower_basic_auth")

if not SECRET.is_file() or not SECRET.read_text(encoding="utf-8").strip():
    raise SystemExit(f"{SECRET} is missing or empty: run python3 docker/make_secrets.py")

basic_auth = [SECRET.read_text(encoding="utf-8").strip()]
"""Flower's --basic-auth option: user:password pairs."""
