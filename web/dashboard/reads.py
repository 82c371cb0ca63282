"""What the pages read, through the operator API's read models (web.operator.views) so a
number on a page and in /api never disagree."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from billing.models import Session, SessionStatus
from csms.domain import Transaction
from csms.keys import STORE
from web.driver.routes import SessionView, session_view
from web.keys import BILLING
from web.operator.routes import all_stations, station_view
from web.operator.routes import transaction_views as operator_transaction_views
from web.operator.views import StationView, TransactionView


async def stations(request: web.Request) -> list[StationView]:
    """Every station, a live one not stored yet included (as in GET /api/stations)."""
    return [station_view(request, s) for s in await all_stations(request)]


async def sessions(request: web.Request, statuses: Collection[SessionStatus] | None = None,
                   station_id: str | None = None, limit: int = 100) -> list[SessionView]:
    service = request.config_dict[BILLING]
    found = await service.store.list_sessions(statuses=statuses, station_id=station_id,
                                              limit=limit)
    return [await session_of(request, s) for s in found]


async def session_of(request: web.Request, session: Session) -> SessionView:
    return session_view(session, await request.config_dict[BILLING].operations(
        session.session_id))


async def transactions(request: web.Request, station_id: str | None = None,
                       active: bool | None = None, limit: int = 100) -> list[TransactionView]:
    found = await request.config_dict[STORE].list_transactions(
        station_id=station_id, active=active, limit=limit)
    return await transaction_views(request, found)


async def transaction_views(request: web.Request,
                            found: list[Transaction]) -> list[TransactionView]:
    return await operator_transaction_views(request, found)


async def find_transaction(request: web.Request, key: str,
                           station_id: str | None = None) -> Transaction | None:
    """The transaction a page names: our id (1 to 2^31 - 1), or with `station_id` the
    station's own transactionId (OCPP 2.0.1, unique per station only), as in the API."""
    store = request.config_dict[STORE]
    if station_id:
        found = await store.get_station_transaction(station_id, key)
        if found is not None:
            return found
    if not key.isascii() or not key.isdecimal() or not 1 <= int(key) <= 2**31 - 1:
        return None
    found = await store.get_transaction(int(key))
    if found is not None and station_id and (found.station_id != station_id
                                             or found.station_transaction_id is not None):
        return None
    return found
