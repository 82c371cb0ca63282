"""Hypothesis-generated OCPP frames against the live server (issue 8 item 15): each frame
gets a CALLERROR with a legal 1.6 code (never InternalError) or a CALLRESULT valid for its
action, and the connection keeps answering Heartbeats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from websockets.asyncio.client import ClientConnection, connect

from csms.ocpp.framing import MessageType
from csms.ocpp.schemas import violation
from tests.support.ocpp_frames import ERROR_CODES_16, KNOWN_HOSTILE, frames, plausible_frames

EXAMPLES = 300
T = TypeVar("T")


@pytest.fixture
async def station_ws(ws_url: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"{ws_url}/CP-FUZZ", subprotocols=["ocpp1.6"], max_size=None) as ws:
        yield ws


def check_reply(sent: str, reply: list[Any]) -> None:
    if reply[0] == MessageType.CallError:
        assert len(reply) == 5 and isinstance(reply[3], str) and isinstance(reply[4], dict)
        assert reply[2] in ERROR_CODES_16 - {"InternalError"}, (sent[:300], reply)
        return
    assert reply[0] == MessageType.CallResult, (sent[:300], reply)
    call = json.loads(sent)
    assert reply[1] == call[1]
    assert violation("1.6", MessageType.CallResult, call[2], reply[2]) is None, (sent, reply)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def known_hostile(test: T) -> T:
    for frame in KNOWN_HOSTILE:
        test = example(frame=frame)(test)
    return test


@FUZZ
@known_hostile
@given(frame=frames())
async def test_every_frame_is_answered_and_the_connection_survives(
        station_ws: ClientConnection, frame: str) -> None:
    await exchange(station_ws, frame)


@settings(FUZZ, max_examples=2 * EXAMPLES)
@given(frame=plausible_frames())
async def test_nearly_valid_frames_reach_the_handlers_and_are_answered(
        station_ws: ClientConnection, frame: str) -> None:
    """Frames that pass the framing checks, so transactions and meter values are exercised."""
    await exchange(station_ws, frame)


async def exchange(station_ws: ClientConnection, frame: str) -> None:
    """Send `frame` and a Heartbeat; check every reply before the Heartbeat's."""
    await station_ws.send(frame)
    await station_ws.send('[2,"hb","Heartbeat",{}]')
    replies = []
    while True:
        reply = json.loads(await asyncio.wait_for(station_ws.recv(), 5))
        if reply[:2] == [3, "hb"] and "currentTime" in reply[2]:
            break
        replies.append(reply)
    is_result = frame.lstrip().startswith(("[3", "[4")) and not replies
    assert len(replies) == 1 or is_result, (frame[:300], replies)
    for reply in replies:
        check_reply(frame, reply)
