"""Payload validation against the official OCPP JSON schemas shipped with the `ocpp` library.

`violation(version, message_type_id, action, payload)` is the hot path of every frame: it runs a
schema compiled to Python by fastjsonschema (about 30x faster than jsonschema), cached per
(version, message type, action). Only once a payload is known to be invalid does jsonschema (the
library's own cached Draft4 validators, `get_validator`) word the error. Codes are neutral
(`framing`): the session spells them in the station's version.
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
from ocpp.messages import MessageType, get_validator

from csms.ocpp.framing import FORMAT_VIOLATION, OCCURRENCE_VIOLATION

_ACTION = re.compile(r"[A-Za-z]{1,64}")
_PROPERTY = {"enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
             "multipleOf", "format", "minLength", "const"}
_OCCURRENCE = {"required", "minItems", "maxItems", "uniqueItems", "dependencies"}


def _schema_path(version: str, message_type_id: int, action: str) -> str:
    """The library's file naming: 1.6 `Action.json`, 2.0.1 `ActionRequest.json`; both
    `ActionResponse.json`."""
    if message_type_id == MessageType.CallResult:
        name = action + "Response"
    else:
        name = action if version == "1.6" else action + "Request"
    folder = "v" + version.replace(".", "")
    return os.path.join(os.path.dirname(ocpp.__file__), folder, "schemas", f"{name}.json")


@functools.cache
def _compiled(version: str, message_type_id: int, action: str,
              ) -> tuple[Callable[[Any], Any] | None, bool]:
    """(compiled validator or None, whether floats must be checked as Decimals).

    Schemas with `multipleOf` on floats (1.6: SetChargingProfile, RemoteStartTransaction,
    GetCompositeSchedule.conf) are checked on Decimals as the library does: binary floats
    fail `multipleOf: 0.1`. They skip the compiled path."""
    try:
        with open(_schema_path(version, message_type_id, action), encoding="utf-8-sig") as f:
            text = f.read()
    except OSError:
        return None, False
    if '"multipleOf"' in text:
        return None, True
    return fastjsonschema.compile(json.loads(text)), False


def violation(version: str, message_type_id: int, action: str, payload: Any,
              ) -> tuple[str, str] | None:
    """Validate a payload against the version's schema: None if valid, else (code, text)."""
    if not _ACTION.fullmatch(action):
        return ("NotImplemented", "Invalid action name")
    compiled, decimal_floats = _compiled(version, message_type_id, action)
    if compiled is not None:
        try:
            compiled(payload)
            return None
        except fastjsonschema.JsonSchemaException:
            pass  # fall through to jsonschema for an exact, OCPP-coded error
    try:
        if decimal_floats:
            validator = get_validator(message_type_id, action, version,
                                      parse_float=decimal.Decimal)
            payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
        else:
            validator = get_validator(message_type_id, action, version)
    except OSError:
        return ("NotImplemented", f"No schema for action {action}")
    error = next(iter(validator.iter_errors(payload)), None)
    if error is None:
        return None
    return (_code_for(error), _describe(error))


def _code_for(error: SchemaValidationError) -> str:
    if error.validator == "type":
        return "TypeConstraintViolation"
    if error.validator == "maxLength":
        return "TypeConstraintViolation"  # CiStringNType: the length is part of the type
    if error.validator in _PROPERTY:
        return "PropertyConstraintViolation"
    if error.validator in _OCCURRENCE:
        return OCCURRENCE_VIOLATION
    return FORMAT_VIOLATION


def _describe(error: SchemaValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message
