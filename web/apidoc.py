"""What the OpenAPI document says about a handler, declared beside it with `@documented(...)`.

The method, path and name come from the router; this adds what the router cannot know: the
request and response models, the query parameters and the error statuses the handler raises.
`web.openapi` reads the registry when it builds the document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Param:
    """A query parameter or request header."""

    name: str
    description: str
    schema: tuple[tuple[str, Any], ...] = (("type", "string"),)


@dataclass(frozen=True)
class Doc:
    summary: str
    response: type[BaseModel] | None = None  # the JSON body of the success response
    many: bool = False  # ... as a JSON array of `response`
    status: int = 200
    content_type: str | None = None  # a success body that is not JSON (text, HTML)
    body: type[BaseModel] | None = None  # the JSON request body
    free_body: str | None = None  # a JSON object body no model describes: what it is
    errors: tuple[int, ...] = ()  # besides 401 (secured routes) and 400/422 (bodies)
    path: tuple[Param, ...] = ()  # path parameters that are not plain strings
    query: tuple[Param, ...] = ()
    headers: tuple[Param, ...] = ()
    security: str | None = None  # a scheme other than the path's default
    public: bool = False  # no authentication even under a secured prefix


DOCS: dict[Callable[..., Any], Doc] = {}


def documented(summary: str, **details: Any) -> Callable[[H], H]:
    """Record the handler's `Doc`; place it under the route decorator."""
    doc = Doc(summary, **details)

    def record(handler: H) -> H:
        DOCS[handler] = doc
        return handler

    return record


INT = (("type", "integer"),)
ID32 = (("type", "integer"), ("minimum", 1), ("maximum", 2**31 - 1))  # our integer ids
BOOL = (("type", "boolean"),)
