"""Wiring of the operator dashboard: server-rendered pages over the operator API's read models, live
through server-sent events fed by the domain events (see `live`)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from web.dashboard import config, jobs, overview, remote, sessions, signin, stations
from web.dashboard.auth import dashboard_middleware
from web.dashboard.live import LiveFeed, events
from web.dashboard.render import setup_templates
from web.settings import Settings

FEED = web.AppKey("dashboard_feed", LiveFeed)
STATIC = Path(__file__).parent / "static"


async def _events(request: web.Request) -> web.StreamResponse:
    """Live changes as server-sent events (?watch=station,session:<id>)."""
    return await events(request, request.app[FEED])


async def _static(request: web.Request) -> web.StreamResponse:
    """Files under static/ only; the vendored ones carry their version in the name."""
    root = STATIC.resolve()
    target = (root / request.match_info["path"]).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise web.HTTPNotFound(text="no such dashboard file")
    return web.FileResponse(target, headers={"Cache-Control": "no-cache"})


async def _close_streams(app: web.Application) -> None:
    app[FEED].close()


def setup_dashboard(app: web.Application, settings: Settings, feed: LiveFeed) -> None:
    """Add the dashboard's routes, templates, static files and middleware to `app`.

    Not a sub-app: its pages live at the root (`/`, `/stations`, ...), which a sub-app's
    prefix cannot be; the middleware acts on routes named `dash_*` only."""
    app[FEED] = feed
    app.middlewares.append(dashboard_middleware(settings))
    setup_templates(app)
    for module in (signin, overview, stations, remote, sessions, jobs, config):
        app.add_routes(module.routes)
    app.router.add_get("/events", _events, name="dash_events")
    app.router.add_get("/dashboard/static/{path:.+}", _static, name="dash_static")
    app.on_shutdown.append(_close_streams)
