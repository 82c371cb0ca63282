"""Rendering: the Jinja environment, its filters, and the context every page shares.

Money reaches templates as integer cents and leaves through `money` (billing.money: Decimal,
two places), never through arithmetic in a template. Times are rendered in UTC inside
`<time datetime=...>`; static/app.js shows them in the browser's zone with UTC on hover.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import get_session
from markupsafe import Markup, escape

from billing.money import format_cents, from_cents
from csms.domain import isoformat
from web.dashboard.auth import csrf_token
from web.keys import SETTINGS

HERE = Path(__file__).parent


def money(cents: int | None, currency: str | None = None) -> str:
    """5000 -> "50.00" (or "BRL 50.00" with a currency)."""
    if cents is None:
        return "—"
    return format_cents(cents, currency) if currency else str(from_cents(cents))


def kwh(wh: int | None) -> str:
    """1234 Wh -> "1.234 kWh"."""
    return "—" if wh is None else f"{kwh_number(wh)} kWh"


def kwh_number(wh: int) -> str:
    """1234 Wh -> "1.234" (a tile prints the unit small, as it does a currency)."""
    return str((Decimal(wh) / 1000).quantize(Decimal("0.001")))


def when(moment: str | datetime | None) -> Markup:
    """An ISO 8601 UTC time as a <time> element; app.js localises it."""
    iso = isoformat(moment) if isinstance(moment, datetime) else moment
    if not iso:
        return Markup("—")
    shown = iso.replace("T", " ").removesuffix("Z").split(".")[0]
    return Markup('<time datetime="{0}" title="{1} UTC">{1} UTC</time>').format(
        escape(iso), shown)


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, context_processors=[aiohttp_jinja2.request_processor])
    env.filters.update(money=money, kwh=kwh, kwh_number=kwh_number, when=when)
    env.globals["static"] = lambda path: f"/dashboard/static/{path}"


async def page(request: web.Request, template: str, *, watch: str = "",
               **context: Any) -> web.Response:
    """Render a full page. `watch` names the changes that refresh its live parts."""
    session = await get_session(request)
    settings = request.config_dict[SETTINGS]
    context.update(
        csrf=csrf_token(session), flashes=session.pop("flash", []), watch=watch,
        open_mode=not settings.api.operator_token, currency=settings.billing.currency)
    response = aiohttp_jinja2.render_template(template, request, context)
    response.headers["Cache-Control"] = "no-store"
    return response


async def flash(request: web.Request, kind: str, text: str) -> None:
    """A message the next page shows once (kind: ok | error)."""
    session = await get_session(request)
    session["flash"] = [*session.get("flash", []), [kind, text]]


def see_other(request: web.Request, route: str, **parts: str) -> web.HTTPSeeOther:
    """Post/redirect/get: a reload never repeats a command or a refund."""
    return web.HTTPSeeOther(request.app.router[route].url_for(**parts))


async def not_found(request: web.Request, message: str) -> web.Response:
    """A page in the dashboard's frame saying what was not found (the API's 404 is JSON)."""
    response = await page(request, "not_found.html", message=message)
    response.set_status(404)
    return response
