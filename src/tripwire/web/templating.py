"""Templates of the web app: the report templates (one set of pages for the static export and the
server) and the server's own (login, review queue, overview), with the same filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from tripwire.reports.render import environment


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    here: bool = False


@dataclass(frozen=True, slots=True)
class Nav:
    """The bar at the top of every server page."""

    items: list[NavItem]
    principal: Any = None
    """Who is signed in (``tripwire.web.auth.Principal``), or None."""
    csrf_token: str = ""
    logout_href: str = "/logout"
    extra: dict[str, Any] = field(default_factory=dict)


SECTIONS = (("Overview", "/"), ("Reviews", "/reviews"), ("Audit", "/audit"))


def nav(here: str, principal: Any = None, csrf_token: str = "") -> Nav:
    return Nav(
        [NavItem(label, href, href == here) for label, href in SECTIONS],
        principal,
        csrf_token,
    )


@cache
def web_environment() -> jinja2.Environment:
    """The report environment with the server's own templates in front of it."""
    base = environment()
    env = base.overlay(
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader("tripwire", "web/templates"), base.loader]  # type: ignore[list-item]
        )
    )
    return env


def render(template: str, **context: Any) -> str:
    return web_environment().get_template(template).render(**context)
