"""Hypothesis strategies for OCPP-J 1.6 frames a station might send: well-formed, slightly
wrong and hostile (wrong types, huge integers, deep nesting, bad timestamps, long ids,
unknown actions, junk JSON)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

ACTIONS = ["BootNotification", "Heartbeat", "StatusNotification", "Authorize",
           "StartTransaction", "StopTransaction", "MeterValues", "DataTransfer",
           "DiagnosticsStatusNotification", "FirmwareStatusNotification",
           "SignCertificate", "RemoteStartTransaction", "Reset"]
FIELDS = ["chargePointVendor", "chargePointModel", "connectorId", "errorCode", "status",
          "timestamp", "idTag", "meterStart", "meterStop", "transactionId", "reason",
          "meterValue", "sampledValue", "value", "unit", "measurand", "transactionData",
          "vendorId", "data", "reservationId", "info", "phase", "context", "format"]
ERROR_CODES_16 = {"NotImplemented", "NotSupported", "InternalError", "ProtocolError",
                  "SecurityError", "FormationViolation", "PropertyConstraintViolation",
                  "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError"}

BIG = 2**63
integers = st.one_of(
    st.integers(-3, 3), st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([2**31, -(2**31) - 1, BIG - 1, BIG, -BIG, 2**64, 10**30]),
    st.integers(),
)
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-11-22T10:00:00Z", "0001-01-01T00:00:00+05:00",
                     "9999-12-31T23:59:59-05:00", "yesterday", "", "2026-13-45T99:99:99Z",
                     "9999-12-31T23:59:59.999999-23:59"]),
)
scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(), st.text(max_size=30),
                    timestamps, st.sampled_from(["Available", "Charging", "NoError", "Wh",
                                                 "kWh", "Energy.Active.Import.Register",
                                                 "1e30", str(BIG), "-5", "NaN"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                            inner, max_size=5)),
    max_leaves=20)
payloads = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


@st.composite
def plausible_payloads(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A payload close to a valid one for its action, one field perhaps spoiled."""
    connector, ts = draw(integers), draw(timestamps)
    templates: dict[str, dict[str, Any]] = {
        "BootNotification": {"chargePointVendor": "V", "chargePointModel": "M"},
        "Heartbeat": {},
        "StatusNotification": {"connectorId": connector, "errorCode": "NoError",
                               "status": "Available", "timestamp": ts},
        "Authorize": {"idTag": draw(st.text(max_size=25))},
        "StartTransaction": {"connectorId": connector, "idTag": "T", "meterStart":
                             draw(integers), "timestamp": ts},
        "StopTransaction": {"transactionId": draw(integers), "meterStop": draw(integers),
                            "timestamp": ts},
        "MeterValues": {"connectorId": connector, "transactionId": draw(integers),
                        "meterValue": [{"timestamp": ts, "sampledValue": [
                            {"value": draw(scalars.map(str)),
                             "unit": draw(st.sampled_from(["Wh", "kWh"]))}]}]},
        "DataTransfer": {"vendorId": "V", "data": draw(st.text(max_size=50))},
    }
    action = draw(st.sampled_from(sorted(templates)))
    payload = dict(templates[action])
    if payload and draw(st.booleans()):
        payload[draw(st.sampled_from(sorted(payload)))] = draw(json_values)
    return action, payload


unique_ids = st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=40),
                       st.sampled_from(["", "x" * 37, "y" * 5000]))


@st.composite
def frames(draw: st.DrawFn) -> str:
    """One frame as text."""
    kind = draw(st.sampled_from(["call", "plausible", "result", "junk", "deep", "raw"]))
    uid = draw(unique_ids)
    if kind == "plausible":
        action, payload = draw(plausible_payloads())
        return json.dumps([2, uid, action, payload])
    if kind == "call":
        action = draw(st.sampled_from(ACTIONS) | st.text(max_size=12))
        return json.dumps([2, uid, action, draw(payloads | json_values)])
    if kind == "result":
        return json.dumps(draw(st.sampled_from([[3, uid, {}], [4, uid, "GenericError", "", {}],
                                                [3, uid], [4, uid, 5, None, []]])))
    if kind == "deep":
        depth = draw(st.integers(20, 3000))
        inner = "[" * depth + "]" * depth
        return draw(st.sampled_from([inner, f'[2,"d","DataTransfer",{{"vendorId":{inner}}}]']))
    if kind == "junk":
        return json.dumps(draw(json_values))
    return draw(st.text(max_size=60))
