"""JSON from peers we do not trust (stations, HTTP clients): parsed with a bound on nesting.

No OCPP or REST body we accept nests deeper than a handful of levels, while a few thousand
`[` make `json.loads` raise RecursionError, and a depth just under that makes every recursive
walk after parsing (key conversion, schema validation, error messages) risk the same.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

MAX_DEPTH = 32


class TooDeep(ValueError):
    """The JSON text nests arrays and objects deeper than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing (TooDeep) a value that nests deeper than `max_depth`.

    Raises ValueError (TooDeep or json's own) for anything that is not acceptable JSON.

    orjson parses first (~4x faster); what it refuses (integers beyond 64 bits, lone
    surrogates, NaN, nesting past 1024) goes to `json.loads`, so what is accepted and how it
    fails stay `json`'s."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(text)
        except RecursionError:
            raise TooDeep(max_depth) from None
    if _may_nest_deeper(text, max_depth) and _deeper_than(data, max_depth):
        raise TooDeep(max_depth)
    return data


def _may_nest_deeper(text: str | bytes, limit: int) -> bool:
    """Nesting needs an opening bracket per level: a text with no more than `limit` of them
    cannot nest deeper, and counting (in C) is much cheaper than walking the parsed value,
    which only hostile or unusually large frames still pay for (measured: bench/session_frame)."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{") > limit
    return text.count("[") + text.count("{") > limit


def _deeper_than(data: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, dict | list) else []
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False
