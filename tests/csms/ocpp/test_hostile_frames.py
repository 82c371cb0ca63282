"""Hostile frames (issue 8): each gets the CALLERROR OCPP-J 1.6 §4.2.3 names, and the
connection stays usable."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from tests.support.raw import raw_exchange

HEARTBEAT = '[2,"hb","Heartbeat",{}]'


async def test_unknown_action_is_not_implemented_and_known_one_not_supported(
        ws_url: str) -> None:
    replies = await raw_exchange(ws_url, "CP-NOTIMPL", [
        '[2,"u1","FlyToTheMoon",{}]',
        '[2,"u2","SignCertificate",{"csr":"x"}]',
        '[2,"u3","Fly-To",{}]',
        HEARTBEAT,
    ])
    assert replies[:3] == [
        [4, "u1", "NotImplemented", "Requested Action is not known by receiver",
         {"cause": "FlyToTheMoon is not an OCPP 1.6 action"}],
        [4, "u2", "NotSupported",
         "Requested Action is recognized but not supported by the receiver",
         {"cause": "SignCertificate is not supported by this central system"}],
        [4, "u3", "NotImplemented", "Requested Action is not known by receiver",
         {"cause": "Fly-To is not an OCPP 1.6 action"}],
    ]
    assert replies[3][:2] == [3, "hb"]


async def test_a_unique_id_over_36_characters_is_refused_under_id_minus_one(
        ws_url: str) -> None:
    long_id = "x" * 37
    replies = await raw_exchange(ws_url, "CP-LONGID", [
        f'[2,"{long_id}","Heartbeat",{{}}]',
        f'[2,"{"y" * 100_000}","Heartbeat",{{}}]',
        f'[2,"{"z" * 36}","Heartbeat",{{}}]',
    ])
    assert replies[0] == [4, "-1", "FormationViolation",
                          "UniqueId must be a string of at most 36 characters",
                          {"cause": "a uniqueId of 37 characters"}]
    assert replies[1][:3] == [4, "-1", "FormationViolation"]
    assert replies[2][:2] == [3, "z" * 36]


async def test_deeply_nested_json_is_a_formation_violation(ws_url: str) -> None:
    deep = "[" * 1200 + "]" * 1200
    deep_payload = '{"a":' * 5000 + "1" + "}" * 5000
    replies = await raw_exchange(ws_url, "CP-DEEP", [
        deep,
        f'[2,"d1","DataTransfer",{deep_payload}]',
        '[2,"d2","DataTransfer",{"vendorId":"V","data":' + "[" * 40 + "]" * 40 + "}]",
        HEARTBEAT,
    ])
    assert replies[0][:3] == [4, "-1", "FormationViolation"]
    assert replies[1][:3] == [4, "d1", "FormationViolation"]
    assert replies[2][:3] == [4, "d2", "FormationViolation"]
    assert "nested" in replies[0][3] and "nested" in replies[2][3]
    assert replies[3][:2] == [3, "hb"]


async def test_timestamps_that_overflow_in_utc_are_property_constraint_violations(
        ws_url: str) -> None:
    start = ('[2,"{uid}","StartTransaction",{{"connectorId":1,"idTag":"T","meterStart":0,'
             '"timestamp":"{at}"}}]')
    replies = await raw_exchange(ws_url, "CP-TS", [
        start.format(uid="t1", at="0001-01-01T00:00:00+05:00"),
        start.format(uid="t2", at="9999-12-31T23:59:59-05:00"),
        '[2,"t3","StatusNotification",{"connectorId":1,"errorCode":"NoError",'
        '"status":"Available","timestamp":"0001-01-01T00:00:00+05:00"}]',
        HEARTBEAT,
    ])
    assert [r[:3] for r in replies[:3]] == [[4, f"t{n}", "PropertyConstraintViolation"]
                                            for n in (1, 2, 3)]
    assert replies[3][:2] == [3, "hb"]


BIG = 2**63
INT32_MAX = 2**31 - 1


async def test_integers_outside_ocpp_16s_32_bit_range_are_type_constraint_violations(
        ws_url: str) -> None:
    start = ('[2,"{uid}","StartTransaction",{{"connectorId":{c},"idTag":"T",'
             '"meterStart":{m},"timestamp":"2026-11-22T10:00:00Z"}}]')
    stop = ('[2,"{uid}","StopTransaction",{{"transactionId":{t},"meterStop":{m},'
            '"timestamp":"2026-11-22T11:00:00Z"}}]')
    replies = await raw_exchange(ws_url, "CP-BIGINT", [
        start.format(uid="i1", c=1, m=BIG),
        start.format(uid="i2", c=BIG, m=0),
        start.format(uid="i3", c=1, m=-BIG),
        stop.format(uid="i4", t=BIG, m=0),
        '[2,"i5","MeterValues",{"connectorId":1,"transactionId":' + str(INT32_MAX + 1)
        + ',"meterValue":[{"timestamp":"2026-11-22T10:30:00Z",'
        '"sampledValue":[{"value":"5"}]}]}]',
        start.format(uid="ok", c=1, m=INT32_MAX - 10),
    ])
    assert [r[:3] for r in replies[:5]] == [[4, f"i{n}", "TypeConstraintViolation"]
                                            for n in range(1, 6)]
    assert "2147483647" in replies[0][3]
    tx = replies[5][2]["transactionId"]

    replies = await raw_exchange(ws_url, "CP-BIGINT", [
        stop.format(uid="s1", t=tx, m=BIG),
        stop.format(uid="s2", t=tx, m=INT32_MAX),
    ])
    assert replies[0][:3] == [4, "s1", "TypeConstraintViolation"]
    assert replies[1][:2] == [3, "s2"]


async def test_an_energy_reading_too_large_is_stored_but_not_as_the_register(
        ws_url: str, http_url: str) -> None:
    meter = ('[2,"{uid}","MeterValues",{{"connectorId":1,"transactionId":{tx},"meterValue":'
             '[{{"timestamp":"{at}","sampledValue":[{{"value":"{v}"}}]}}]}}]')
    async with aiohttp.ClientSession() as http:
        replies = await raw_exchange(ws_url, "CP-HUGEWH", [
            '[2,"s","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,'
            '"timestamp":"2026-11-22T10:00:00Z"}]'])
        tx = replies[0][2]["transactionId"]
        replies = await raw_exchange(ws_url, "CP-HUGEWH", [
            meter.format(uid="m1", tx=tx, at="2026-11-22T10:10:00Z", v="1500"),
            meter.format(uid="m2", tx=tx, at="2026-11-22T10:20:00Z", v=str(BIG)),
            meter.format(uid="m3", tx=tx, at="2026-11-22T10:30:00Z", v="1e30"),
            meter.format(uid="m4", tx=tx, at="2026-11-22T10:40:00Z",
                         v='1e999999","unit":"kWh'),
        ])
        assert [r[:2] for r in replies] == [[3, "m1"], [3, "m2"], [3, "m3"], [3, "m4"]]
        async with http.get(f"{http_url}/api/transactions/{tx}") as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body["energyWh"] == 500
    assert [v["value"] for v in body["meterValues"]] == ["1500", str(BIG), "1e30", "1e999999"]


async def test_impossible_connectors_are_property_constraint_violations(ws_url: str) -> None:
    start = ('[2,"{uid}","StartTransaction",{{"connectorId":{c},"idTag":"T","meterStart":0,'
             '"timestamp":"2026-11-22T10:00:00Z"}}]')
    replies = await raw_exchange(ws_url, "CP-CONN", [
        start.format(uid="c1", c=0),
        start.format(uid="c2", c=-5),
        '[2,"c3","StatusNotification",{"connectorId":-1,"errorCode":"NoError",'
        '"status":"Available"}]',
        '[2,"c4","MeterValues",{"connectorId":-2,"meterValue":[{"timestamp":'
        '"2026-11-22T10:00:00Z","sampledValue":[{"value":"1"}]}]}]',
        '[2,"ok","StatusNotification",{"connectorId":0,"errorCode":"NoError",'
        '"status":"Available"}]',
    ])
    assert [r[:3] for r in replies[:4]] == [[4, f"c{n}", "PropertyConstraintViolation"]
                                            for n in range(1, 5)]
    assert replies[4][:2] == [3, "ok"]


async def test_a_new_start_on_a_busy_connector_supersedes_the_older_transaction(
        ws_url: str, http_url: str) -> None:
    start = ('[2,"s{n}","StartTransaction",{{"connectorId":1,"idTag":"T{n}",'
             '"meterStart":{m},"timestamp":"2026-11-22T10:{n:02d}:00Z"}}]')
    frames = [start.format(n=n, m=1000 + n) for n in range(60)]
    frames.insert(1, '[2,"mv","MeterValues",{"connectorId":1,"transactionId":TX,"meterValue":'
                  '[{"timestamp":"2026-11-22T10:00:30Z","sampledValue":[{"value":"1001"}]}]}]')
    first = (await raw_exchange(ws_url, "CP-DOUBLE", frames[:1]))[0][2]["transactionId"]
    frames[1] = frames[1].replace("TX", str(first))
    replies = await raw_exchange(ws_url, "CP-DOUBLE", frames)
    # an exact repeat of a start keeps its transaction id
    assert replies[0][2]["transactionId"] == first
    ids = [r[2]["transactionId"] for r in replies if r[1].startswith("s")]
    assert len(set(ids)) == 60
    assert {r[2]["idTagInfo"]["status"] for r in replies if r[1].startswith("s")} == \
        {"Accepted"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/transactions",
                            params={"stationId": "CP-DOUBLE", "active": "true"}) as resp:
            active = await resp.json()
        async with http.get(f"{http_url}/api/transactions/{first}") as resp:
            older = await resp.json()
    assert [tx["transactionId"] for tx in active] == [ids[-1]]
    assert (older["stopReason"], older["meterStop"], older["energyWh"]) == \
        ("Superseded", 1001, 1)
    assert older["stoppedAt"] == "2026-11-22T10:01:00.000Z"


@pytest.mark.parametrize("encoded", ["NL-TEST%0A", "%2E%2E", "CP..1", "%2E", "A%20B"])
async def test_station_ids_are_checked_whole(ws_url: str, http_url: str, encoded: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(URL(f"{ws_url}/{encoded}", encoded=True),
                                  protocols=["ocpp1.6"])
        assert refused.value.status == 400
        async with http.get(f"{http_url}/api/stations") as resp:
            assert await resp.json() == []
