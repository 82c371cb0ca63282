"""The Rust yes/no check in front of jsonschema (csms/ocpp/schemas.py) never calls a payload
valid that jsonschema, the reference, calls invalid: valid payloads of the hot actions, mutated
at random places (values replaced by any JSON, keys dropped or added, numbers at the 32-bit
edges), get the same verdict from `violation` as from jsonschema alone."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.messages import MessageType

from csms.ocpp import schemas

TS = "2026-12-07T15:00:00.000Z"
SAMPLES = [{"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
            "context": "Sample.Periodic"}, {"value": "7200", "measurand": "Power.Active.Import"}]
VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("1.6", "MeterValues", {"connectorId": 1, "transactionId": 5,
                            "meterValue": [{"timestamp": TS, "sampledValue": SAMPLES}]}),
    ("1.6", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                   "status": "Charging", "timestamp": TS}),
    ("1.6", "StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": 0,
                                 "timestamp": TS}),
    ("1.6", "Heartbeat", {}),
    ("2.0.1", "TransactionEvent", {
        "eventType": "Updated", "timestamp": TS, "triggerReason": "MeterValuePeriodic",
        "seqNo": 3, "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1}, "idToken": {"idToken": "T", "type": "ISO14443"},
        "meterValue": [{"timestamp": TS, "sampledValue": [
            {"value": 1234.5, "measurand": "Energy.Active.Import.Register"}]}]}),
    ("2.0.1", "BootNotification", {"reason": "PowerUp", "chargingStation": {
        "model": "M", "vendorName": "V"}}),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.sampled_from(
        [2**31 - 1, 2**31, -2**31, -2**31 - 1, 0, -1, 1.5, 1e300]) | st.text(max_size=30) |
    st.sampled_from(["Charging", "Energy.Active.Import.Register", "Wh", TS, "", "x" * 60]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str, Any]:
    version, action, payload = draw(st.sampled_from(VALID))
    payload = copy.deepcopy(payload)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(payload)))
        if not path:
            continue
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        how = draw(st.sampled_from(["replace", "drop", "add"]))
        if how == "replace":
            parent[path[-1]] = draw(json_values)
        elif how == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
    return version, action, payload


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_rust_check_never_passes_what_jsonschema_refuses(
        case: tuple[str, str, Any]) -> None:
    version, action, payload = case
    reference = schemas._validator(version, MessageType.Call, action)
    assert reference is not None
    jsonschema_valid = next(iter(reference.iter_errors(payload)), None) is None
    check = schemas._compiled(version, MessageType.Call, action)
    assert check is not None
    if check(payload):
        assert jsonschema_valid
    assert (schemas.violation(version, MessageType.Call, action, payload) is None) == \
        jsonschema_valid


def test_the_valid_payloads_pass_without_jsonschema() -> None:
    for version, action, payload in VALID:
        check = schemas._compiled(version, MessageType.Call, action)
        assert check is not None and check(payload), (version, action)
