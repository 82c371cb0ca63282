"""Payload validation against the official OCPP JSON schemas shipped with the `ocpp` library.

`violation(version, message_type_id, action, payload)` is the hot path of every frame: it asks
jsonschema-rs (Rust; about 0.5 us for a MeterValues, against 5 us for the schema compiled to
Python by fastjsonschema and ~150 us for jsonschema) whether the payload is valid, with a
validator cached per (version, message type, action). Only a payload it does not call valid
goes to jsonschema (a cached validator over the same schema), which decides and words the
error: jsonschema has the last word, so the Rust check can only make a valid frame cheaper.
Codes are neutral (`framing`): the session spells them in the station's version.
"""

from __future__ import annotations

import decimal
import functools
import json
import os
import re
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import ocpp
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.messages import MessageType

from csms.ocpp.framing import FORMAT_VIOLATION, OCCURRENCE_VIOLATION

INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # OCPP's integer: 32 bit, signed
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
def _schema(version: str, message_type_id: int, action: str) -> tuple[Any, bool] | None:
    """(the schema with bounded integers, whether floats must be checked as Decimals), or None
    when the version has no such message.

    Schemas with `multipleOf` on floats (1.6: SetChargingProfile, RemoteStartTransaction,
    GetCompositeSchedule.conf) are checked on Decimals as the library does: binary floats
    fail `multipleOf: 0.1`."""
    try:
        with open(_schema_path(version, message_type_id, action), encoding="utf-8-sig") as f:
            text = f.read()
    except OSError:
        return None
    decimal_floats = '"multipleOf"' in text
    schema = json.loads(text, parse_float=decimal.Decimal if decimal_floats else float)
    return _bound_integers(schema), decimal_floats


def _bound_integers(node: Any) -> Any:
    """Give every `"type": "integer"` the range of OCPP's integer, a 32-bit signed number (1.6
    and 2.0.1 define it so): the official schemas leave it unbounded, and 2^63 then reaches
    the store."""
    if isinstance(node, dict):
        node = {key: _bound_integers(value) for key, value in node.items()}
        if node.get("type") == "integer":
            node.setdefault("minimum", INT_MIN)
            node.setdefault("maximum", INT_MAX)
    elif isinstance(node, list):
        node = [_bound_integers(value) for value in node]
    return node


@functools.cache
def _compiled(version: str, message_type_id: int, action: str) -> Callable[[Any], bool] | None:
    """The yes/no check of the schema (jsonschema-rs `is_valid`); None for Decimal schemas
    (jsonschema only).

    Formats are not checked, as jsonschema does not check them without a format checker (the
    library's own validation has none). `$ref`s are inlined: the OCPP schemas have no
    recursive types. A payload Rust cannot take (a lone surrogate from the JSON fallback)
    raises, and goes to jsonschema like an invalid one."""
    found = _schema(version, message_type_id, action)
    if found is None or found[1]:
        return None
    schema = found[0]
    inlined = _inline_refs(schema, schema.get("definitions", {}))
    return jsonschema_rs.validator_for(inlined, validate_formats=False).is_valid


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every `{"$ref": "#/definitions/X"}` replaced by X (the OCPP schemas have
    no recursive types) and the definitions table dropped."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            return _inline_refs(definitions[ref.removeprefix("#/definitions/")], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items()
                if key != "definitions"}
    if isinstance(node, list):
        return [_inline_refs(value, definitions) for value in node]
    return node


@functools.cache
def _validator(version: str, message_type_id: int, action: str) -> Draft4Validator | None:
    found = _schema(version, message_type_id, action)
    return None if found is None else Draft4Validator(found[0])


# (version, message type, action) -> `_compiled`, for the messages that have a schema: one
# dict lookup per frame instead of the name check and the cached call (~0.2 us)
_checks: dict[tuple[str, int, str], Callable[[Any], bool] | None] = {}


def violation(version: str, message_type_id: int, action: str, payload: Any,
              ) -> tuple[str, str] | None:
    """Validate a payload against the version's schema: None if valid, else (code, text)."""
    key = (version, message_type_id, action)
    try:
        compiled = _checks[key]
    except KeyError:
        if not _ACTION.fullmatch(action):
            return ("NotImplemented", "Invalid action name")
        compiled = _compiled(version, message_type_id, action)
        if _schema(version, message_type_id, action) is not None:
            _checks[key] = compiled
    if compiled is not None:
        try:
            if compiled(payload):
                return None
        except (ValueError, TypeError, OverflowError):
            pass  # not a value Rust takes: jsonschema decides
        # jsonschema decides (an exact, OCPP-coded error, or valid after all)
    validator = _validator(version, message_type_id, action)
    if validator is None:
        return ("NotImplemented", f"No schema for action {action}")
    if _schema(version, message_type_id, action)[1]:  # type: ignore[index]
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    error = next(iter(validator.iter_errors(payload)), None)
    if error is None:
        return None
    return (_code_for(error), _describe(error))


def _code_for(error: SchemaValidationError) -> str:
    out_of_range = error.validator in ("minimum", "maximum") and \
        error.validator_value in (INT_MIN, INT_MAX)  # outside the integer type, not a rule
    if error.validator == "type" or out_of_range:
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
