"""OCPP 1.6J framing and schema validation with the error codes OCPP 1.6 names.

The `ocpp` library validates with its own compiled, cached Draft4 validators; we reuse those
(`get_validator`) but map failures to the 1.6 error codes (the library raises 2.0 names such as
`FormatViolation` and `ProtocolError` for a 1.6 payload).
"""

from __future__ import annotations

import decimal
import functools
import json
import os
import re
from collections.abc import Callable
from typing import Any

import fastjsonschema
import ocpp
from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp import exceptions as ocpp_exc
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.messages import Call, CallError, CallResult, MessageType, get_validator

OCPP16 = "1.6"

_PROPERTY = {"enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
             "multipleOf", "format", "minLength", "const"}
_OCCURRENCE = {"required", "minItems", "maxItems", "uniqueItems", "dependencies"}


class FrameError(Exception):
    """A frame that cannot be handled; answered with a CALLERROR carrying `unique_id`."""

    def __init__(self, unique_id: str, code: str, description: str, details: dict | None = None):
        super().__init__(f"{code}: {description}")
        self.unique_id = unique_id
        self.code = code
        self.description = description
        self.details = details or {}

    def call_error(self) -> CallError:
        return CallError(self.unique_id, self.code, self.description, self.details)


def parse_frame(raw: str | bytes) -> Call | CallResult | CallError:
    """Parse one OCPP-J frame; raise `FrameError` with the best unique id we can recover."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError("-1", "FormationViolation", "Message is not valid JSON",
                         {"cause": str(exc)}) from exc
    if not isinstance(data, list) or not data:
        raise FrameError("-1", "FormationViolation", "An OCPP-J message must be a JSON array")
    unique_id = data[1] if len(data) > 1 and isinstance(data[1], str) else "-1"
    type_id = data[0]
    if len(data) > 1 and not isinstance(data[1], str):
        raise FrameError("-1", "FormationViolation", "UniqueId must be a string")
    if type_id == MessageType.Call:
        if len(data) != 4:
            raise FrameError(unique_id, "FormationViolation",
                             "A CALL has exactly 4 elements: [2, uniqueId, action, payload]")
        if not isinstance(data[2], str):
            raise FrameError(unique_id, "FormationViolation", "Action must be a string")
        if not isinstance(data[3], dict):
            raise FrameError(unique_id, "FormationViolation", "Payload must be a JSON object")
        return Call(data[1], data[2], data[3])
    if type_id == MessageType.CallResult:
        if len(data) != 3:
            raise FrameError(unique_id, "FormationViolation", "A CALLRESULT has 3 elements")
        return CallResult(data[1], data[2])
    if type_id == MessageType.CallError:
        if len(data) != 5:
            raise FrameError(unique_id, "FormationViolation", "A CALLERROR has 5 elements")
        return CallError(data[1], data[2], data[3], data[4])
    raise FrameError(unique_id, "ProtocolError", f"Unknown MessageTypeId {type_id!r}")


_SCHEMA_DIR = os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")
# 1.6 schemas with `multipleOf: 0.1` on floats: validated on Decimals, as the library does.
_DECIMAL_ACTIONS = {(MessageType.Call, "SetChargingProfile"),
                    (MessageType.Call, "RemoteStartTransaction"),
                    (MessageType.CallResult, "GetCompositeSchedule")}


@functools.cache
def _compiled(message_type_id: int, action: str) -> Callable[[Any], Any] | None:
    """The official 1.6 schema (shipped with the `ocpp` library) compiled to Python code.

    fastjsonschema checks a payload ~30x faster than jsonschema; jsonschema is only used to
    word the error once a payload is known to be invalid."""
    name = action + ("Response" if message_type_id == MessageType.CallResult else "")
    path = os.path.join(_SCHEMA_DIR, f"{name}.json")
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return fastjsonschema.compile(json.load(handle))
    except OSError:
        return None


def schema_violation(action: str, payload: Any, message_type_id: int = MessageType.Call,
                     ) -> tuple[str, str] | None:
    """Validate a payload against the library's 1.6 schema: None if valid, else (code, text)."""
    if not re.fullmatch(r"[A-Za-z]{1,64}", action):
        return ("NotImplemented", "Invalid action name")
    decimal_floats = (message_type_id, action) in _DECIMAL_ACTIONS
    compiled = None if decimal_floats else _compiled(message_type_id, action)
    if compiled is not None:
        try:
            compiled(payload)
            return None
        except fastjsonschema.JsonSchemaException:
            pass  # fall through to jsonschema for an exact, OCPP-coded error
    try:
        if decimal_floats:
            validator = get_validator(message_type_id, action, OCPP16, parse_float=decimal.Decimal)
            payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
        else:
            validator = get_validator(message_type_id, action, OCPP16)
    except OSError:
        return ("NotImplemented", f"No schema for action {action}")
    error = next(iter(validator.iter_errors(payload)), None)
    if error is None:
        return None
    return (_code_for(error), _describe(error))


@functools.lru_cache(maxsize=4096)
def _snake(key: str) -> str:
    return camel_to_snake_case({key: None}).popitem()[0]


@functools.lru_cache(maxsize=4096)
def _camel(key: str) -> str:
    return snake_to_camel_case({key: None}).popitem()[0]


def snake_keys(data: Any) -> Any:
    """The library's camelCase -> snake_case key conversion, memoized per key (the regexes
    cost ~18% of a busy hub's CPU)."""
    if isinstance(data, dict):
        return {_snake(k): snake_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [snake_keys(v) for v in data]
    return data


def camel_keys(data: Any) -> Any:
    """The library's snake_case -> camelCase key conversion, memoized per key."""
    if isinstance(data, dict):
        return {_camel(k): camel_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [camel_keys(v) for v in data]
    return data


def _code_for(error: SchemaValidationError) -> str:
    if error.validator == "type":
        return "TypeConstraintViolation"
    if error.validator == "maxLength":
        return "TypeConstraintViolation"  # CiStringNType: the length is part of the type
    if error.validator in _PROPERTY:
        return "PropertyConstraintViolation"
    if error.validator in _OCCURRENCE:
        return "OccurenceConstraintViolation"  # sic: OCPP 1.6 spells it this way
    return "FormationViolation"


def _describe(error: SchemaValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def error_from_exception(unique_id: str, exc: BaseException) -> CallError:
    """Map a library OCPPError (or anything else) to a 1.6 CALLERROR."""
    if isinstance(exc, ocpp_exc.OCPPError):
        code = exc.code
        if code == "FormatViolation":
            code = "FormationViolation"
        return CallError(unique_id, code, exc.description, exc.details or {})
    return CallError(unique_id, "InternalError", "An internal error occurred", {})
