"""Hostile frames (issue 8): each gets the CALLERROR OCPP-J 1.6 §4.2.3 names, and the
connection stays usable."""

from __future__ import annotations

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
