"""`GET /receipts/{token}`: a session's receipt, at an unguessable address.

HTML by default; `?format=text` (or `Accept: text/plain`) gives the plain-text version.
"""

from __future__ import annotations

from aiohttp import web

from web.apidoc import Param, documented
from web.errors import ApiError
from web.keys import BILLING_STORE

routes = web.RouteTableDef()


@routes.get("/receipts/{token}", name="receipt")
@documented("A charging receipt (HTML, or text with ?format=text)", content_type="text/html",
            errors=(404,), query=(Param("format", "text: plain text"),))
async def receipt(request: web.Request) -> web.Response:
    found = await request.config_dict[BILLING_STORE].receipt_by_token(
        request.match_info["token"])
    if found is None:
        raise ApiError(404, "not_found", "no such receipt")
    wants_text = request.query.get("format") == "text" or \
        request.headers.get("Accept", "").startswith("text/plain")
    headers = {"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex",
               "Referrer-Policy": "no-referrer"}
    if wants_text:
        return web.Response(text=found.text, content_type="text/plain", headers=headers)
    return web.Response(text=found.html, content_type="text/html", headers=headers)
