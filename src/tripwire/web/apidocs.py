"""``/docs``: the API described from its OpenAPI schema, on one page with no external assets.

FastAPI's own ``/docs`` and ``/redoc`` load their JavaScript and CSS from a CDN, which an
offline deployment cannot reach (and which a review app should not load anyway). This page is
rendered on the server from ``/openapi.json``: every operation with its method, path, summary
and parameters. Tools that want the full schema read ``/openapi.json``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

_STYLE = (
    "body{font:14px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem}"
    "code{background:#f3f3f3;padding:0 .25rem}td,th{padding:.25rem .5rem;text-align:left;"
    "vertical-align:top;border-bottom:1px solid #ddd}table{border-collapse:collapse;width:100%}"
)


def add_api_docs(app: FastAPI) -> None:
    """Serve the page at ``/docs`` (create the app with ``docs_url=None, redoc_url=None``)."""

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(render(app.openapi()))


def render(schema: dict[str, Any]) -> str:
    info = schema.get("info", {})
    rows = []
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method, op in operations.items():
            params = ", ".join(
                f"{p.get('name')} ({p.get('in')}{', required' if p.get('required') else ''})"
                for p in op.get("parameters", [])
            )
            lines = (op.get("description") or "").strip().splitlines()
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}"
                f"</code></td><td>{escape(op.get('summary', ''))}<br><small>"
                f"{escape(lines[0] if lines else '')}</small></td><td>{escape(params)}</td></tr>"
            )
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title} API</title>"
        f"<style>{_STYLE}</style></head><body><h1>{title} API</h1>"
        "<p>The full schema: <a href='/openapi.json'>/openapi.json</a> (OpenAPI "
        f"{escape(str(schema.get('openapi', '')))}). Requests need a token where the server "
        "asks for one.</p><table><tr><th>method</th><th>path</th><th>what</th>"
        f"<th>parameters</th></tr>{''.join(rows)}</table></body></html>"
    )
