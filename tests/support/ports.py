"""Checking that an adapter offers every method its port (a composed Protocol) declares."""

from __future__ import annotations

from typing import Any, Protocol


def port_methods(port: type[Any]) -> set[str]:
    """Public methods declared by `port` and every Protocol it is composed of."""
    names: set[str] = set()
    for cls in port.__mro__:
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        names |= {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}
    return names


def missing_methods(adapter: object, port: type[Any]) -> list[str]:
    return sorted(n for n in port_methods(port) if not callable(getattr(adapter, n, None)))
