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
ids = st.one_of(st.integers(0, 3), st.integers(1, 200), integers)  # mostly ones that exist
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
# what a meter reading's text may hold: numbers of every size, and none
SPECIAL_READINGS = ["1e999999", "-1e999990", "1e30", str(BIG), "sNaN", "NaN", "Infinity", "-0",
                    "1_000", " 12 ", ""]
readings = st.one_of(st.sampled_from(SPECIAL_READINGS), st.sampled_from(SPECIAL_READINGS),
                     st.decimals(allow_nan=True, allow_infinity=True).map(str),
                     st.integers().map(str), st.text(max_size=10))
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
    connector, ts = draw(ids), draw(timestamps)
    templates: dict[str, dict[str, Any]] = {
        "BootNotification": {"chargePointVendor": "V", "chargePointModel": "M"},
        "Heartbeat": {},
        "StatusNotification": {"connectorId": connector, "errorCode": "NoError",
                               "status": "Available", "timestamp": ts},
        "Authorize": {"idTag": draw(st.text(max_size=25))},
        "StartTransaction": {"connectorId": connector, "idTag": "T", "meterStart":
                             draw(integers), "timestamp": ts},
        "StopTransaction": {"transactionId": draw(ids), "meterStop": draw(integers),
                            "timestamp": ts},
        "MeterValues": {"connectorId": connector, "transactionId": draw(ids),
                        "meterValue": [{"timestamp": ts, "sampledValue": [
                            {"value": draw(readings),
                             "unit": draw(st.sampled_from(["kWh", "Wh", "kvarh"]))}]}]},
        "DataTransfer": {"vendorId": "V", "data": draw(st.text(max_size=50))},
    }
    action = draw(st.sampled_from(sorted(templates)))
    payload = dict(templates[action])
    if payload and draw(st.integers(0, 3)) == 0:
        payload[draw(st.sampled_from(sorted(payload)))] = draw(json_values)
    return action, payload


@st.composite
def plausible_frames(draw: st.DrawFn) -> str:
    """A CALL close to a valid one, under a proper uniqueId."""
    action, payload = draw(plausible_payloads())
    return json.dumps([2, str(draw(st.uuids())), action, payload])


unique_ids = st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=40),
                       st.sampled_from(["", "x" * 37, "y" * 5000]))


@st.composite
def frames(draw: st.DrawFn) -> str:
    """One frame as text."""
    kind = draw(st.sampled_from(["plausible"] * 5 + ["call", "result", "junk", "deep", "raw"]))
    uid = draw(unique_ids)
    if kind == "plausible":
        return draw(plausible_frames())
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


def _meter(value: str, unit: str) -> str:
    return json.dumps([2, "mv", "MeterValues", {"connectorId": 1, "transactionId": 1,
                       "meterValue": [{"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [
                           {"value": value, "unit": unit}]}]}])


# Frames that broke the server once (issue 8), sent on every run before the generated ones.
KNOWN_HOSTILE = [
    '[2,"s1","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":' + str(BIG)
    + ',"timestamp":"2026-11-22T10:00:00Z"}]',
    '[2,"s2","StopTransaction",{"transactionId":1,"meterStop":' + str(BIG)
    + ',"timestamp":"2026-11-22T10:00:00Z"}]',
    '[2,"s3","StartTransaction",{"connectorId":0,"idTag":"T","meterStart":0,'
    '"timestamp":"2026-11-22T10:00:00Z"}]',
    '[2,"s4","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available",'
    '"timestamp":"0001-01-01T00:00:00+05:00"}]',
    '[2,"s5","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":0,'
    '"timestamp":"9999-12-31T23:59:59-05:00"}]',
    "[" * 1500 + "]" * 1500,
    '[2,"d","DataTransfer",{"vendorId":' + "[" * 999 + "]" * 999 + "}]",
    '[2,"' + "u" * 37 + '","Heartbeat",{}]',
    '[2,"x","FlyToTheMoon",{}]',
    *(_meter(value, unit) for value in SPECIAL_READINGS for unit in ("kWh", "Wh", "kvarh")),
]
