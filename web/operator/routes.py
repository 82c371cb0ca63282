"""Operator JSON API under `/api` (Bearer `api.operator_token` when set)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field, model_validator

from billing.models import JobStatus, SessionStatus, StopRequester
from billing.money import PriceAmount
from billing.service import BillingError
from csms.commands import (
    CommandInvalid,
    CommandRejected,
    CommandTimeout,
    CommandUnavailable,
    StationNotConnected,
)
from csms.domain import (
    STATION_ID_PATTERN,
    STATION_ID_RULE,
    IdTag,
    Station,
    Transaction,
    parse_timestamp,
    valid_station_id,
)
from csms.keys import HUB, OCPP_SETTINGS, STATION_COMMANDS, STORE
from csms.ocpp.endpoint import VERSIONS
from csms.ocpp.version import OcppVersion
from csms.passwords import hash_password
from csms.store import KEEP, Keep
from web.apidoc import BOOL, INT, Param, documented
from web.bodies import FieldError, read_json, validate
from web.credentials import same_secret
from web.driver.routes import SessionView, session_view
from web.errors import ApiError, Handler
from web.keys import BILLING, CLUSTER, SETTINGS
from web.openapi import openapi_view
from web.operator import device_model
from web.operator.views import (
    CommandResult,
    FrameView,
    IdTagView,
    JobAccepted,
    JobView,
    OrphanStopView,
    RefundAccepted,
    RefundView,
    SessionDetail,
    StationView,
    TariffView,
    TerminalView,
    TransactionDetail,
    TransactionView,
)

routes = web.RouteTableDef()

# Every call the CSMS may send a station, in any version it speaks; which of them a station
# takes depends on the version it connected with (`OcppVersion.commands`).
COMMANDS = sorted(frozenset().union(*(version.commands for version in VERSIONS)))
BY_NAME = {version.name: version for version in VERSIONS}


@web.middleware
async def operator_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.config_dict[SETTINGS].api.operator_token
    if token and request.path != "/api/openapi.json":
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(given.strip(), token):
            raise ApiError(401, "unauthorized", "a valid Bearer token is required",
                           headers={"WWW-Authenticate": 'Bearer realm="operator"'}) from None
    return await handler(request)


async def session_of(request: web.Request, tx: Transaction) -> str | None:
    """Billing's session for a transaction (the charging core knows no money)."""
    session = await request.config_dict[BILLING].store.session_by_transaction(tx.transaction_id)
    return session.session_id if session else None


async def transaction_views(request: web.Request,
                            transactions: list[Transaction]) -> list[TransactionView]:
    """A list of transactions with billing's session of each, read in one store call."""
    sessions = await request.config_dict[BILLING].store.sessions_by_transactions(
        [tx.transaction_id for tx in transactions])
    return [TransactionView.of(tx, s.session_id if (s := sessions.get(tx.transaction_id))
                               else None) for tx in transactions]


def station_view(request: web.Request, station: Station) -> StationView:
    """The read model of a stored station: live status, effective security profile."""
    app = request.config_dict
    cluster = app.get(CLUSTER)
    where = None if cluster is None else cluster.presence.elsewhere.get(station.id)
    return StationView.of(station, app[HUB].live(station.id),
                          app[OCPP_SETTINGS].security_profile,
                          where.version if where else None)


def live_ids(request: web.Request) -> set[str]:
    """The stations connected to this node or (in a cluster) held by another one."""
    app = request.config_dict
    cluster = app.get(CLUSTER)
    ids = set(app[HUB].connected_ids())
    return ids if cluster is None else ids | cluster.presence.elsewhere.keys()


def is_live(request: web.Request, station_id: str) -> bool:
    app = request.config_dict
    cluster = app.get(CLUSTER)
    return app[HUB].is_connected(station_id) or (
        cluster is not None and station_id in cluster.presence.elsewhere)


async def find_station(request: web.Request, station_id: str) -> Station | None:
    """The stored station; a live one that is not stored yet as what is known of it, its id.

    A brand-new station's row is created by the batched write of its connect
    (`csms.connection_writer`) or by its BootNotification, milliseconds after it connected; a
    live station is shown connected meanwhile rather than missing."""
    station = await request.config_dict[STORE].get_station(station_id)
    if station is None and is_live(request, station_id):
        return Station(id=station_id)
    return station


async def all_stations(request: web.Request) -> list[Station]:
    """Every stored station by id, with the live ones not stored yet (`find_station`)."""
    stations = await request.config_dict[STORE].list_stations()
    unstored = live_ids(request).difference(s.id for s in stations)
    if not unstored:
        return stations
    return sorted([*stations, *(Station(id=sid) for sid in unstored)], key=lambda s: s.id)


def connected_version(request: web.Request, station_id: str) -> OcppVersion | None:
    """The OCPP version of the station's open connection, on this node or (in a cluster)
    another one; None when it is not connected."""
    app = request.config_dict
    live = app[HUB].live(station_id)
    if live is not None:
        return live.version
    cluster = app.get(CLUSTER)
    where = None if cluster is None else cluster.presence.elsewhere.get(station_id)
    return None if where is None else BY_NAME.get(where.version)


async def station_detail(request: web.Request, station: Station) -> StationView:
    """`station_view` with billing's part: the bound payment terminal (one read)."""
    view = station_view(request, station)
    binding = await request.config_dict[BILLING].store.station_terminal(station.id)
    view.terminal = TerminalView.of(binding) if binding else None
    return view


def _station(request: web.Request, station: Station) -> dict[str, Any]:
    return station_view(request, station).model_dump()


def _int_param(request: web.Request, name: str) -> int:
    """One of our integer ids (1 to 2^31 - 1, OCPP's integer); anything else names nothing."""
    raw = request.match_info[name]
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"{name} must be an integer") from None
    if not 1 <= value <= 2**31 - 1:
        raise ApiError(404, "not_found", f"no {name} {value}")
    return value


# --- stations --------------------------------------------------------------------------------

@routes.get("/stations", name="stations")
@documented("Stations, provisioned or seen", response=StationView, many=True)
async def list_stations(request: web.Request) -> web.Response:
    return web.json_response([_station(request, s) for s in await all_stations(request)])


@routes.get("/stations/{station_id}", name="station")
@documented("One station, live status included", response=StationView, errors=(404,))
async def get_station(request: web.Request) -> web.Response:
    station = await find_station(request, request.match_info["station_id"])
    if station is None:
        raise ApiError(404, "not_found", "unknown station")
    return web.json_response((await station_detail(request, station)).model_dump())


def _station_id(text: str) -> str:
    if not valid_station_id(text):
        raise ValueError(f"not a station id: {STATION_ID_RULE}")
    return text


class ProvisionRequest(BaseModel):
    id: Annotated[str, AfterValidator(_station_id)] = Field(
        json_schema_extra={"pattern": STATION_ID_PATTERN})
    password: str | None = Field(default=None, min_length=8, max_length=40,
                                 description="set or change the station's Basic password")
    clearPassword: bool = Field(False, description="remove the password; without `password` "
                                "or this, a provisioned station keeps its password")
    securityProfile: Annotated[int, Field(strict=True, ge=1, le=3)] | None = Field(
        default=None, description="the station's own security profile (1 Basic, 2 TLS + Basic, "
        "3 mutual TLS); null: the server's ocpp.security_profile; absent: a provisioned "
        "station keeps its own")

    def profile_change(self) -> int | Keep | None:
        """The profile to store: KEEP unless the body named `securityProfile`."""
        return self.securityProfile if "securityProfile" in self.model_fields_set else KEEP

    @model_validator(mode="after")
    def _one_password_change(self) -> ProvisionRequest:
        if self.password is not None and self.clearPassword:
            raise FieldError("clearPassword", "give either password or clearPassword")
        return self


@routes.post("/stations", name="provision")
@documented("Provision a station, optionally with a Basic password and its own security profile",
            body=ProvisionRequest, response=StationView, status=201)
async def provision_station(request: web.Request) -> web.Response:
    body = validate(ProvisionRequest, await read_json(request))
    hashed = hash_password(body.password) if body.password else None
    station = await request.config_dict[STORE].provision_station(
        body.id, hashed, keep_password=hashed is None and not body.clearPassword,
        security_profile=body.profile_change())
    return web.json_response(_station(request, station), status=201)


@routes.get("/stations/{station_id}/messages", name="station_messages")
@documented("The station's latest OCPP frames, newest first", response=FrameView, many=True,
            errors=(422,), query=(Param("limit", "at most 1000 (default 100)", INT),))
async def station_messages(request: web.Request) -> web.Response:
    hub = request.config_dict[HUB]
    await hub.frames.flush()
    try:
        limit = min(int(request.query.get("limit", "100")), 1000)
    except ValueError:
        raise ApiError(422, "invalid_request", "limit must be an integer", field="limit") \
            from None
    frames = await request.config_dict[STORE].list_frames(request.match_info["station_id"],
                                                          limit)
    return web.json_response([FrameView.of(f).model_dump() for f in frames])


@routes.post("/stations/{station_id}/commands/{action}", name="command")
@documented("Send an OCPP call to the connected station in its own version (1.6 or 2.0.1) and "
            "return its answer. The payload is checked against the official schema of the "
            "station's version: 422 `unsupported_command` for an action that version does "
            "not have (RemoteStartTransaction to a 2.0.1 station), 422 `invalid_payload` for "
            "a payload its schema refuses; 502 when the station answers with a CALLERROR",
            free_body="the action's OCPP payload", response=CommandResult,
            errors=(404, 502, 503, 504),
            path=(Param("action", "an OCPP 1.6 or 2.0.1 call from the central system",
                        (("type", "string"), ("enum", COMMANDS))),))
async def station_command(request: web.Request) -> web.Response:
    station_id = request.match_info["station_id"]
    action = request.match_info["action"]
    if action not in COMMANDS:
        raise ApiError(404, "unknown_command",
                       f"{action} is not a call the CSMS sends to OCPP 1.6 or 2.0.1 stations")
    payload = await read_json(request) if request.body_exists else {}
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_payload", "the payload must be a JSON object")
    connected = connected_version(request, station_id)
    if connected is None:
        raise ApiError(404, "station_not_connected", f"station {station_id} is not connected")
    version = connected.name
    if action not in connected.commands:
        raise ApiError(422, "unsupported_command",
                       f"{action} is not an OCPP {version} call; station {station_id} is "
                       f"connected with OCPP {version}", field="action")
    try:
        response = await request.config_dict[STATION_COMMANDS].call(station_id, action, payload)
    except StationNotConnected:
        raise ApiError(404, "station_not_connected", f"station {station_id} is not connected") \
            from None
    except CommandInvalid as exc:
        raise ApiError(422, "invalid_payload",
                       f"not a valid OCPP {version} {action} request: {exc}") from None
    except CommandTimeout as exc:
        raise ApiError(504, "station_timeout", str(exc)) from None
    except CommandUnavailable as exc:
        raise ApiError(503, "cluster_unavailable", str(exc),
                       headers={"Retry-After": "5"}) from None
    except CommandRejected as exc:
        raise ApiError(502, "station_error", str(exc), ocppErrorCode=exc.code) from None
    return web.json_response(CommandResult(action=action, response=response).model_dump())


# --- transactions ----------------------------------------------------------------------------

@routes.get("/transactions", name="transactions")
@documented("Transactions, newest first", response=TransactionView, many=True,
            errors=(422,),
            query=(Param("stationId", "only this station's"),
                   Param("active", "true: running, false: stopped", BOOL),
                   Param("limit", "at most 1000 (default 100)", INT)))
async def list_transactions(request: web.Request) -> web.Response:
    active_param = request.query.get("active")
    active: bool | None = None
    if active_param is not None and active_param != "":
        if active_param.lower() not in ("true", "false", "1", "0"):
            raise ApiError(422, "invalid_request", "active must be true or false",
                           field="active")
        active = active_param.lower() in ("true", "1")
    try:
        limit = min(int(request.query.get("limit", "100")), 1000)
    except ValueError:
        raise ApiError(422, "invalid_request", "limit must be an integer", field="limit") \
            from None
    transactions = await request.config_dict[STORE].list_transactions(
        station_id=request.query.get("stationId") or None, active=active, limit=limit)
    return web.json_response([view.model_dump()
                              for view in await transaction_views(request, transactions)])


@routes.get("/transactions/{transaction_id}", name="transaction")
@documented("One transaction with its meter values", response=TransactionDetail,
            errors=(404,),
            path=(Param("transactionId", "our id (the `id` field; a 1.6 transactionId), or with"
                        " stationId the station's own transactionId (OCPP 2.0.1)"),),
            query=(Param("stationId", "the station whose transactionId this is"),))
async def get_transaction(request: web.Request) -> web.Response:
    """A 2.0.1 station's transactionId is unique only per station, so it is looked up with
    `?stationId=`; a 1.6 station's is our integer id, found either way."""
    store = request.config_dict[STORE]
    station_id = request.query.get("stationId")
    tx = None
    if station_id:
        tx = await store.get_station_transaction(station_id,
                                                 request.match_info["transaction_id"])
        if tx is None and request.match_info["transaction_id"].isdecimal():
            tx = await store.get_transaction(_int_param(request, "transaction_id"))
            if tx is not None and (tx.station_id != station_id
                                   or tx.station_transaction_id is not None):
                tx = None
    else:
        tx = await store.get_transaction(_int_param(request, "transaction_id"))
    if tx is None:
        raise ApiError(404, "not_found", "unknown transaction")
    values = await store.list_meter_values(tx.transaction_id)
    detail = TransactionDetail.with_values(tx, await session_of(request, tx), values)
    return web.json_response(detail.model_dump())


@routes.get("/orphan-stops", name="orphan_stops")
@documented("StopTransactions for transactions the CSMS does not know",
            response=OrphanStopView, many=True, query=(Param("stationId", "only this station's"),))
async def list_orphan_stops(request: web.Request) -> web.Response:
    stops = await request.config_dict[STORE].list_orphan_stops(
        request.query.get("stationId") or None)
    return web.json_response([OrphanStopView.of(s).model_dump() for s in stops])


# --- id tags ---------------------------------------------------------------------------------

class IdTagRequest(BaseModel):
    status: str = Field("Accepted", pattern=r"^(Accepted|Blocked|Expired|Invalid)$")
    expiryDate: str | None = None
    parentIdTag: str | None = Field(default=None, max_length=20)


@routes.get("/id-tags", name="id_tags")
@documented("Known id tags (RFID)", response=IdTagView, many=True)
async def list_id_tags(request: web.Request) -> web.Response:
    tags = await request.config_dict[STORE].list_id_tags()
    return web.json_response([IdTagView.of(t).model_dump() for t in tags])


@routes.put("/id-tags/{id_tag}", name="id_tag")
@documented("Create or update an id tag", body=IdTagRequest, response=IdTagView)
async def put_id_tag(request: web.Request) -> web.Response:
    id_tag = request.match_info["id_tag"]
    if not 1 <= len(id_tag) <= 20:
        raise ApiError(422, "invalid_request", "idTag must be 1 to 20 characters", field="idTag")
    body = validate(IdTagRequest, await read_json(request))
    try:
        expiry = parse_timestamp(body.expiryDate) if body.expiryDate else None
    except ValueError:
        raise ApiError(422, "invalid_request", "expiryDate: not an ISO 8601 date-time",
                       field="expiryDate") from None
    tag = await request.config_dict[STORE].upsert_id_tag(
        IdTag(id_tag, body.status, expiry, body.parentIdTag))
    return web.json_response(IdTagView.of(tag).model_dump())


# --- billing: tariffs and sessions ------------------------------------------------------------

class TariffRequest(BaseModel):
    pricePerKwh: PriceAmount = Field(max_digits=12, decimal_places=6)
    fixedConnectionFee: PriceAmount = Field(max_digits=12, decimal_places=2)


async def _tariff_json(request: web.Request, station_id: str) -> dict[str, Any]:
    return (await TariffView.of(request.config_dict[BILLING], station_id)).model_dump()


@routes.get("/stations/{station_id}/tariff", name="station_tariff")
@documented("The tariff a station prices with", response=TariffView)
async def get_tariff(request: web.Request) -> web.Response:
    return web.json_response(await _tariff_json(request, request.match_info["station_id"]))


@routes.put("/stations/{station_id}/tariff", name="put_station_tariff")
@documented("Override the default tariff for a station", body=TariffRequest,
            response=TariffView, errors=(404,))
async def put_tariff(request: web.Request) -> web.Response:
    station_id = request.match_info["station_id"]
    if await request.config_dict[STORE].get_station(station_id) is None:
        raise ApiError(404, "not_found", "unknown station")
    body = validate(TariffRequest, await read_json(request))
    await request.config_dict[BILLING].store.set_station_tariff(
        station_id, str(body.pricePerKwh), str(body.fixedConnectionFee))
    return web.json_response(await _tariff_json(request, station_id))


class TerminalRequestBody(BaseModel):
    terminalId: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    managementSystemId: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9._:-]*$",
                                    description="empty: billing.ccv.management_system_id")


@routes.put("/stations/{station_id}/terminal", name="put_station_terminal")
@documented("Bind the station's payment terminal (CCV): terminal sessions at this station "
            "authorise and read cards on it", body=TerminalRequestBody, response=TerminalView,
            errors=(404,))
async def put_terminal(request: web.Request) -> web.Response:
    station_id = request.match_info["station_id"]
    if await request.config_dict[STORE].get_station(station_id) is None:
        raise ApiError(404, "not_found", "unknown station")
    body = validate(TerminalRequestBody, await read_json(request))
    binding = await request.config_dict[BILLING].store.bind_terminal(
        station_id, body.terminalId, body.managementSystemId)
    return web.json_response(TerminalView.of(binding).model_dump())


@routes.delete("/stations/{station_id}/terminal", name="delete_station_terminal")
@documented("Unbind the station's payment terminal (sessions already started keep theirs)",
            status=204, errors=(404,))
async def delete_terminal(request: web.Request) -> web.Response:
    station_id = request.match_info["station_id"]
    if not await request.config_dict[BILLING].store.unbind_terminal(station_id):
        raise ApiError(404, "not_found", "the station has no terminal")
    return web.Response(status=204)


@routes.get("/sessions", name="sessions")
@documented("Charging sessions (billing)", response=SessionView, many=True, errors=(422,),
            query=(Param("status", "comma-separated session statuses"),
                   Param("stationId", "only this station's")))
async def list_sessions(request: web.Request) -> web.Response:
    statuses = None
    if request.query.get("status"):
        try:
            statuses = {SessionStatus(s) for s in request.query["status"].split(",")}
        except ValueError:
            raise ApiError(422, "invalid_request", "status: unknown session status",
                           field="status") from None
    service = request.config_dict[BILLING]
    sessions = await service.store.list_sessions(
        statuses=statuses, station_id=request.query.get("stationId") or None)
    return web.json_response([session_view(s, await service.operations(s.session_id))
                              .model_dump() for s in sessions])


@routes.get("/sessions/{session_id}", name="session")
@documented("One session with its payment ledger and money jobs", response=SessionDetail,
            errors=(404,))
async def get_session(request: web.Request) -> web.Response:
    service = request.config_dict[BILLING]
    try:
        session = await service.get(request.match_info["session_id"])
    except BillingError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    view = session_view(session, await service.operations(session.session_id))
    jobs = await service.store.list_jobs(session_id=session.session_id)
    detail = SessionDetail(**dict(view), jobs=[JobView.of(j) for j in jobs])
    return web.json_response(detail.model_dump())


class RefundRequest(BaseModel):
    amount: int = Field(gt=0, description="cents")
    reason: str | None = Field(None, max_length=500)


@routes.post("/sessions/{session_id}/refund", name="session_refund")
@documented("Refund (part of) a settled session; runs as a money job", body=RefundRequest,
            response=RefundAccepted, status=202, errors=(404, 409),
            headers=(Param("Idempotency-Key", "replays the stored result for the same body; "
                           "409 for another body"),))
async def refund_session(request: web.Request) -> web.Response:
    body = validate(RefundRequest, await read_json(request))
    service = request.config_dict[BILLING]
    try:
        op = await service.operator_refund(request.match_info["session_id"], body.amount,
                                           body.reason, request.headers.get("Idempotency-Key"))
    except BillingError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    refund = RefundView(idempotencyKey=op.idempotency_key, amount=op.amount,
                        status=op.status.value, jobId=op.idempotency_key)
    return web.json_response(RefundAccepted(refund=refund).model_dump(), status=202)


@routes.post("/sessions/{session_id}/stop", name="session_stop")
@documented("Stop a session as the operator (same rules as the driver's stop; recorded as the "
            "operator's and re-sent until the station stops)", response=SessionView,
            errors=(404,))
async def stop_session(request: web.Request) -> web.Response:
    service = request.config_dict[BILLING]
    try:
        session = await service.stop(request.match_info["session_id"], StopRequester.OPERATOR)
    except BillingError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    view = session_view(session, await service.operations(session.session_id))
    return web.json_response(view.model_dump())


class ReviewRequest(BaseModel):
    decision: Literal["capture", "release"]
    amountCents: int | None = Field(None, ge=0, description="cents to charge (capture); at "
                                    "most what was authorized or paid, the rest is given back")


@routes.post("/sessions/{session_id}/review", name="session_review")
@documented("Decide what a session in REVIEW (implausible energy) owes: capture an amount, or "
            "release everything", body=ReviewRequest, response=SessionView,
            errors=(404, 409))
async def review_session(request: web.Request) -> web.Response:
    body = validate(ReviewRequest, await read_json(request))
    if body.decision == "capture" and body.amountCents is None:
        raise ApiError(422, "invalid_request", "amountCents is required to capture",
                       field="amountCents")
    service = request.config_dict[BILLING]
    try:
        session = await service.review(request.match_info["session_id"],
                                       body.amountCents if body.decision == "capture" else None)
    except BillingError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    view = session_view(session, await service.operations(session.session_id))
    return web.json_response(view.model_dump())


@routes.get("/jobs", name="jobs")
@documented("Money jobs (refunds, capture/void retries, receipts)", response=JobView,
            many=True, errors=(422,),
            query=(Param("status", "comma-separated job statuses"),
                   Param("sessionId", "only this session's")))
async def list_jobs(request: web.Request) -> web.Response:
    statuses = None
    if request.query.get("status"):
        try:
            statuses = {JobStatus(s) for s in request.query["status"].split(",")}
        except ValueError:
            raise ApiError(422, "invalid_request", "status: unknown job status",
                           field="status") from None
    jobs = await request.config_dict[BILLING].store.list_jobs(
        statuses=statuses, session_id=request.query.get("sessionId") or None)
    return web.json_response([JobView.of(j).model_dump() for j in jobs])


@routes.post("/jobs/{job_id}/retry", name="job_retry")
@documented("Run a FAILED money job again", response=JobAccepted, status=202,
            errors=(404, 409))
async def retry_job(request: web.Request) -> web.Response:
    try:
        job = await request.config_dict[BILLING].retry_job(request.match_info["job_id"])
    except BillingError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    return web.json_response(JobAccepted(job=JobView.of(job)).model_dump(), status=202)


def create_operator_api() -> web.Application:
    api = web.Application(middlewares=[operator_auth])
    api.router.add_get("/openapi.json", openapi_view, name="openapi")
    api.add_routes(routes)
    api.add_routes(device_model.routes)
    return api
