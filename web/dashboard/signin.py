"""`/login` (one password field, `token`) and `/logout`."""

from __future__ import annotations

import hmac

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session

from web.dashboard.auth import csrf_token, sign_in, signed_in
from web.keys import SETTINGS

routes = web.RouteTableDef()


def _next(request: web.Request) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    target = request.query.get("next", "/")
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def _form(request: web.Request, error: str | None = None, status: int = 200,
                ) -> web.Response:
    session = await get_session(request)
    response = aiohttp_jinja2.render_template(
        "login.html", request, {"csrf": csrf_token(session), "error": error,
                                "next": _next(request)}, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/login", name="dash_login")
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form."""
    token = request.config_dict[SETTINGS].api.operator_token
    if signed_in(await get_session(request), token):
        raise web.HTTPSeeOther(_next(request))
    return await _form(request)


@routes.post("/login", name="dash_login_post")
async def login(request: web.Request) -> web.StreamResponse:
    """Sign in with the operator token (form field token)."""
    token = request.config_dict[SETTINGS].api.operator_token
    form = await request.post()
    session = await get_session(request)
    expected = str(session.get("csrf", ""))  # none yet: the form was never fetched
    if not expected or not hmac.compare_digest(str(form.get("csrf", "")), expected):
        return await _form(request, "The form expired; please sign in again.", 403)
    if token and not hmac.compare_digest(str(form.get("token", "")), token):
        return await _form(request, "That is not the operator token.", 401)
    await sign_in(request, token)
    raise web.HTTPSeeOther(_next(request))


@routes.post("/logout", name="dash_logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out."""
    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther(request.app.router["dash_login"].url_for())
