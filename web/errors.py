"""One middleware renders every error as `{"success": false, "error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from csms.store import StoreError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {400: "bad_request", 401: "unauthorized", 402: "payment_declined", 403: "forbidden",
          404: "not_found", 405: "method_not_allowed", 408: "timeout", 409: "conflict",
          413: "too_large",
          415: "unsupported_media_type", 422: "invalid_request", 500: "internal_error",
          502: "bad_gateway", 503: "unavailable", 504: "timeout"}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    field: str | None = None  # the request field to blame (422)
    sessionId: str | None = None  # the driver's session the error concerns
    ocppErrorCode: str | None = None  # the CALLERROR code a station answered (502)


class ErrorResponse(BaseModel):
    success: Literal[False] = False
    error: ErrorDetail


class ApiError(web.HTTPException):
    """An error with our own code and message, rendered as JSON by the middleware."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.status_code = status
        super().__init__(reason=None, headers=headers)
        self.code = code
        self.message = message
        self.extra = extra


def error_code(status: int) -> str:
    """Our error code for an HTTP status (what the middleware names an aiohttp refusal)."""
    return _CODES.get(status, "error")


def error_response(status: int, code: str, message: str,
                   headers: Any = None, **extra: Any) -> web.Response:
    body = ErrorResponse(success=False, error=ErrorDetail(code=code, message=message, **extra))
    response = web.json_response(body.model_dump(exclude_unset=True), status=status)
    if headers:
        for name in ("WWW-Authenticate", "Allow", "Retry-After"):
            if name in headers:
                response.headers[name] = headers[name]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status_code, exc.code, exc.message, headers=exc.headers,
                              **exc.extra)
    except web.HTTPException as exc:
        if exc.status_code < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status_code}:") \
            else exc.reason
        return error_response(exc.status_code, error_code(exc.status_code),
                              message or "", headers=exc.headers)
    except StoreError as exc:  # the store is down or unreachable: retry, nothing was taken
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "unavailable", "The store is unavailable; retry shortly",
                              headers={"Retry-After": "5"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "An internal error occurred")
