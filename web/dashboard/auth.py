"""Sign-in, the session cookie and CSRF for the dashboard's routes (and only for them).

The cookie is aiohttp-session's EncryptedCookieStorage (Fernet: encrypted and signed),
HttpOnly, SameSite=Strict, Secure when the request came over TLS. A signed-in session holds a
fingerprint of the operator token it was opened with, so a changed token signs everyone out
even with a fixed `dashboard.session_key`. Every session carries a CSRF token that each POST
form sends back as the field `csrf`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web
from aiohttp_session import Session, get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from web.errors import Handler
from web.settings import Settings

COOKIE = "csms_dashboard"
ROUTE_PREFIX = "dash_"  # dashboard route names; the middleware leaves every other route alone
PUBLIC = frozenset({"dash_login", "dash_login_post"})  # they check CSRF themselves


def session_key(settings: Settings) -> bytes:
    """32 bytes for the cookie's Fernet key: from dashboard.session_key, else from the
    operator token, else random (sign-ins then end with the process)."""
    secret = settings.dashboard.session_key or settings.api.operator_token
    if not secret:
        return secrets.token_bytes(32)
    return hashlib.sha256(b"csms-dashboard-session\0" + secret.encode()).digest()


def fingerprint(token: str) -> str:
    return hashlib.sha256(b"csms-dashboard-token\0" + token.encode()).hexdigest()[:32]


def signed_in(session: Session, token: str) -> bool:
    """An empty operator token leaves the dashboard open (development, with a banner)."""
    return not token or hmac.compare_digest(session.get("auth", ""), fingerprint(token))


def csrf_token(session: Session) -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


async def sign_in(request: web.Request, token: str) -> None:
    """A fresh session (no fixation: the pre-sign-in one is dropped) marked signed in."""
    session = await new_session(request)
    session["auth"] = fingerprint(token)
    csrf_token(session)


def dashboard_middleware(settings: Settings) -> web.middleware:  # type: ignore[valid-type]
    """Session, sign-in and CSRF checks for routes named `dash_*`; others pass untouched."""
    storage = EncryptedCookieStorage(
        session_key(settings), cookie_name=COOKIE, httponly=True, samesite="Strict",
        max_age=settings.dashboard.session_hours * 3600)
    with_session = session_middleware(storage)
    token = settings.api.operator_token

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or ""
        if not route.startswith(ROUTE_PREFIX):
            return await handler(request)

        async def guarded(request: web.Request) -> web.StreamResponse:
            if route in PUBLIC:
                return await handler(request)
            session = await get_session(request)
            if not signed_in(session, token):
                login = request.app.router["dash_login"].url_for()
                raise web.HTTPSeeOther(login.with_query(next=request.path_qs))
            if request.method == "POST":
                form = await request.post()
                if not hmac.compare_digest(str(form.get("csrf", "")), csrf_token(session)):
                    raise web.HTTPForbidden(text="missing or stale CSRF token: reload the page")
            return await handler(request)

        response = await with_session(request, guarded)
        if request.secure and COOKIE in response.cookies:
            response.cookies[COOKIE]["secure"] = True
        return response

    return middleware

