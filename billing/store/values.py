"""What every billing store adapter refuses to store, whatever its backend: a session field
that does not exist, is not settable through changes, or holds a value of the wrong type (a float
for cents, say), a tariff that is not a decimal string, a second session with a taken id."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from billing.models import Session

SESSION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Session))
SESSION_TYPES: dict[str, Any] = typing.get_type_hints(Session)
SESSION_DATETIMES = frozenset(
    name for name, hint in SESSION_TYPES.items() if datetime in (hint, *typing.get_args(hint))
)
# Fields a caller may never set through changes: the key, the two CAS-guarded statuses (moved
# only by their own transition_*), and what the store owns (timestamps, version).
PROTECTED_FIELDS = frozenset(
    {"session_id", "status", "payment_status", "created_at", "updated_at", "version"}
)


class DuplicateSession(ValueError):
    """create_session: a session with this session_id or id_tag already exists."""


def check_session_value(name: str, value: Any) -> None:
    """Reject a value that does not fit the Session field's type (floats for cents, etc.)."""
    hint = SESSION_TYPES[name]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is type(None):
            if value is None:
                return
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return
        elif isinstance(kind, type) and issubclass(kind, Enum):
            if isinstance(value, str) and value in kind._value2member_map_:
                return
        elif isinstance(value, kind):
            return
    raise ValueError(f"invalid value for session field {name!r}: {value!r}")


def check_session_changes(changes: dict[str, Any]) -> None:
    """Refuse `changes` (Session field names and values) that an adapter must not write."""
    unknown = sorted(set(changes) - set(SESSION_FIELDS))
    if unknown:
        raise ValueError(f"unknown session fields: {', '.join(unknown)}")
    protected = sorted(set(changes) & PROTECTED_FIELDS)
    if protected:
        raise ValueError(f"session fields not settable here: {', '.join(protected)}")
    for name, value in changes.items():
        check_session_value(name, value)


def check_decimal_text(name: str, value: Any) -> None:
    """A tariff value must be a string holding a finite, non-negative decimal ("1.50")."""
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a non-negative decimal string: {value!r}")
