"""Request bodies: read JSON, validate it with a pydantic model, and name the bad field."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from csms import jsontext
from web.errors import ApiError

M = TypeVar("M", bound=BaseModel)


class FieldError(ValueError):
    """Raised by a model validator to blame one field (pydantic would blame the model)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


async def read_json(request: web.Request, *, max_bytes: int | None = None) -> Any:
    """The body as JSON; 413 when longer than `max_bytes` (the app's client_max_size caps
    every body), 415 for a charset we do not know, 400 `malformed_json` when it is not JSON
    or nests deeper than `jsontext.MAX_DEPTH`."""
    if max_bytes is not None and ((request.content_length or 0) > max_bytes
                                  or len(await request.read()) > max_bytes):
        raise ApiError(413, "too_large", f"the request body is over {max_bytes} bytes")
    try:
        text = await request.text()
    except LookupError:
        raise ApiError(415, "unsupported_media_type",
                       f"unknown charset {request.charset!r}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json",
                       f"the request body is not valid {request.charset or 'utf-8'}") from None
    try:
        return jsontext.loads(text)
    except jsontext.TooDeep as exc:
        raise ApiError(400, "malformed_json", f"the request body is {exc}") from None
    except ValueError:
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None


def validate(model: type[M], data: Any) -> M:
    """`data` as `model`; 422 `invalid_request` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        blamed = first.get("ctx", {}).get("error")
        if isinstance(blamed, FieldError):
            raise ApiError(422, "invalid_request", f"{blamed.field}: {blamed.message}",
                           field=blamed.field) from None
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid_request", f"{field}: {first['msg']}", field=field) \
            from None


async def parse_body(request: web.Request, model: type[M], *,
                     max_bytes: int | None = None) -> M:
    """A JSON object body validated as `model`."""
    data = await read_json(request, max_bytes=max_bytes)
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "the request body must be a JSON object")
    return validate(model, data)
