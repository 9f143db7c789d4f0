"""The HTTP server (FastAPI): metrics, health and the JSON API; ``create_app`` builds it."""

from tripwire.web.app import create_app

__all__ = ["create_app"]
