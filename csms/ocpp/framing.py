"""OCPP-J framing, the same in every version: `[2, id, action, payload]`, `[3, id, payload]`,
`[4, id, code, description, details]`, and the camelCase <-> snake_case key conversion.

Error codes raised here are neutral: the names OCPP-J 2.0.1 and the `ocpp` library use
(`FormatViolation`, `OccurrenceConstraintViolation`, ...). A version spells them on the wire
(`OcppVersion.error_code`): 1.6 says `FormationViolation`, `OccurenceConstraintViolation`.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import functools
import re
from typing import Any

import orjson
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.messages import Call, CallError, CallResult, MessageType

from csms import jsontext

__all__ = ["Call", "CallError", "CallResult", "FrameError", "MessageType", "call_result_json",
           "camel_keys", "parse_frame", "payload_of", "snake_keys"]

FORMAT_VIOLATION = "FormatViolation"
OCCURRENCE_VIOLATION = "OccurrenceConstraintViolation"
RPC_FRAMEWORK_ERROR = "RpcFrameworkError"  # not a valid RPC frame (1.6: FormationViolation)
MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"  # 1.6: ProtocolError
MAX_UNIQUE_ID = 36  # OCPP-J: a uniqueId is at most 36 characters (a UUID's text)


class ParsedCall(Call):
    """A CALL read from the wire: the library's Call without its constructor's check for a
    dataclass payload (a parsed payload is a JSON object), ~0.25 us of every frame."""

    def __init__(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        self.unique_id = unique_id
        self.action = action
        self.payload = payload


class FrameError(Exception):
    """A frame that cannot be handled; answered with a CALLERROR carrying `unique_id`.

    `code` is the neutral name; the session spells it in the station's version."""

    def __init__(self, unique_id: str, code: str, description: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.unique_id = unique_id
        self.code = code
        self.description = description
        self.details = details or {}


def parse_frame(raw: str | bytes) -> Call | CallResult | CallError:
    """Parse one OCPP-J frame; raise `FrameError` with the best unique id we can recover.

    A uniqueId that is not a string of at most 36 characters is never echoed: the CALLERROR
    goes out under "-1", as for a frame whose id cannot be read at all (echoing a shortened
    id could match another call the station is waiting on)."""
    try:
        data = jsontext.loads(raw)
    except jsontext.TooDeep as exc:
        raise FrameError(_readable_id(raw), RPC_FRAMEWORK_ERROR, str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(_readable_id(raw), RPC_FRAMEWORK_ERROR, "Message is not valid JSON",
                         {"cause": str(exc)}) from exc
    if not isinstance(data, list) or not data:
        raise FrameError("-1", RPC_FRAMEWORK_ERROR, "An OCPP-J message must be a JSON array")
    unique_id = data[1] if len(data) > 1 and isinstance(data[1], str) else "-1"
    if len(data) > 1 and not isinstance(data[1], str):
        raise FrameError("-1", RPC_FRAMEWORK_ERROR, "UniqueId must be a string")
    if len(unique_id) > MAX_UNIQUE_ID:
        raise FrameError("-1", RPC_FRAMEWORK_ERROR,
                         f"UniqueId must be a string of at most {MAX_UNIQUE_ID} characters",
                         {"cause": f"a uniqueId of {len(unique_id)} characters"})
    type_id = data[0]
    if len(data) > 1 and not isinstance(data[1], str):
        raise FrameError("-1", RPC_FRAMEWORK_ERROR, "UniqueId must be a string")
    if type_id == MessageType.Call:
        if len(data) != 4:
            raise FrameError(unique_id, RPC_FRAMEWORK_ERROR,
                             "A CALL has exactly 4 elements: [2, uniqueId, action, payload]")
        if not isinstance(data[2], str):
            raise FrameError(unique_id, RPC_FRAMEWORK_ERROR, "Action must be a string")
        if not isinstance(data[3], dict):
            raise FrameError(unique_id, FORMAT_VIOLATION, "Payload must be a JSON object")
        return ParsedCall(data[1], data[2], data[3])
    if type_id == MessageType.CallResult:
        if len(data) != 3:
            raise FrameError(unique_id, RPC_FRAMEWORK_ERROR, "A CALLRESULT has 3 elements")
        return CallResult(data[1], data[2])
    if type_id == MessageType.CallError:
        if len(data) != 5:
            raise FrameError(unique_id, RPC_FRAMEWORK_ERROR, "A CALLERROR has 5 elements")
        return CallError(data[1], data[2], data[3], data[4])
    raise FrameError(unique_id, MESSAGE_TYPE_NOT_SUPPORTED, f"Unknown MessageTypeId {type_id!r}")


_LEADING_ID = re.compile(rf'\s*\[\s*[234]\s*,\s*"([^"\\]{{1,{MAX_UNIQUE_ID}}})"')


def _readable_id(raw: str | bytes) -> str:
    """The uniqueId at the head of a frame that does not parse as a whole, else "-1"."""
    text = raw if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
    found = _LEADING_ID.match(text[:200])
    return found.group(1) if found else "-1"


@functools.lru_cache(maxsize=4096)
def _snake_key(key: str) -> str:
    return camel_to_snake_case({key: None}).popitem()[0]


@functools.lru_cache(maxsize=4096)
def _camel_key(key: str) -> str:
    return snake_to_camel_case({key: None}).popitem()[0]


# The conversions seen so far, looked up in a plain dict first (a dict lookup is several times
# cheaper than a call through lru_cache). Bounded: keys come from schema-checked payloads and our
# own dataclasses, and beyond the bound the lru_cache still answers.
_SNAKE: dict[str, str] = {}
_CAMEL: dict[str, str] = {}
_KNOWN_KEYS = 4096


def _snake(key: str) -> str:
    found = _SNAKE.get(key)
    if found is None:
        found = _snake_key(key)
        if len(_SNAKE) < _KNOWN_KEYS:
            _SNAKE[key] = found
    return found


def _camel(key: str) -> str:
    found = _CAMEL.get(key)
    if found is None:
        found = _camel_key(key)
        if len(_CAMEL) < _KNOWN_KEYS:
            _CAMEL[key] = found
    return found


def snake_keys(data: Any) -> Any:
    """The library's camelCase -> snake_case key conversion, memoized per key (the regexes
    cost ~18% of a busy hub's CPU)."""
    if type(data) is dict:
        return {_snake(k): v if type(v) not in _CONTAINERS else snake_keys(v)
                for k, v in data.items()}
    if type(data) is list:
        return [snake_keys(v) for v in data]
    return data


def camel_keys(data: Any) -> Any:
    """The library's snake_case -> camelCase key conversion, memoized per key."""
    if isinstance(data, dict):
        return {_camel(k): camel_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [camel_keys(v) for v in data]
    return data


_CONTAINERS = (dict, list)


# A type's fields as (attribute, camelCase key), or None when it is no dataclass; filled as
# types are met (the call_result dataclasses and what they nest: a few dozen types).
_FIELDS: dict[type, tuple[tuple[str, str], ...] | None] = {}
_SCALARS = frozenset({str, int, float, bool})


def _fields_of(kind: type) -> tuple[tuple[str, str], ...] | None:
    try:
        return _FIELDS[kind]
    except KeyError:
        fields = tuple((field.name, _camel(field.name)) for field in dataclasses.fields(kind)) \
            if dataclasses.is_dataclass(kind) else None
        _FIELDS[kind] = fields
        return fields


def payload_of(response: Any) -> Any:
    """A handler's call_result dataclass as the camelCase payload sent on the wire.

    The same as the library's `camel_keys(remove_nones(serialize_as_dict(response)))` in one
    walk: nested dataclasses become objects, None values and None list items are left out,
    keys are camelCased. (The three library passes were ~8% of a frame's cost; the fields are
    looked up per type and plain values returned first: `is_dataclass` on every value was
    another ~0.5 us of a Heartbeat's answer.)"""
    kind = type(response)
    if kind in _SCALARS:
        return response
    fields = _fields_of(kind)
    if fields is not None:
        return {key: payload_of(value) for name, key in fields
                if (value := getattr(response, name)) is not None}
    if isinstance(response, dict):
        return {_camel(k): payload_of(v) for k, v in response.items() if v is not None}
    if isinstance(response, list | tuple):
        return [payload_of(v) for v in response if v is not None]
    return response


def _json_default(value: Any) -> Any:
    """What orjson does not encode itself: Decimals as the library encodes them (one decimal)."""
    if isinstance(value, decimal.Decimal):
        return float(f"{value:.1f}")
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def call_result_json(unique_id: str, payload: Any) -> str:
    """`[3, uniqueId, payload]` as compact JSON text (orjson: ~10x the standard encoder)."""
    return orjson.dumps([MessageType.CallResult, unique_id, payload],
                        default=_json_default).decode()
