"""What the operator API returns: one pydantic model per JSON shape, built from the domain.

The handlers build their responses through these models and the OpenAPI document is generated
from the same models, so the spec and the JSON cannot drift. Field names are the wire names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from billing.models import Job
from billing.service import BillingService
from csms.domain import IdTag, LoggedFrame, MeterValue, OrphanStop, Station, Transaction, isoformat
from csms.ocpp.hub import LiveStation
from web.driver.routes import SessionView


class ConnectorView(BaseModel):
    connectorId: int
    status: str
    errorCode: str
    info: str | None
    vendorErrorCode: str | None
    updatedAt: str | None


class EvseConnectorView(BaseModel):
    connectorId: int
    status: str  # 2.0.1 ConnectorStatusEnumType


class EvseView(BaseModel):
    """An OCPP 2.0.1 EVSE: what a driver picks (our connectorId is its evseId), with its
    status folded from its connectors' (an occupied connector makes the EVSE occupied)."""

    evseId: int
    status: str
    errorCode: str
    updatedAt: str | None
    connectors: list[EvseConnectorView]  # as reported on the open connection; [] offline


class StationView(BaseModel):
    id: str
    connected: bool
    vendor: str | None
    model: str | None
    serialNumber: str | None
    firmwareVersion: str | None
    firmwareStatus: str | None
    diagnosticsStatus: str | None
    provisioned: bool
    passwordSet: bool
    securityProfile: int  # the one the station connects with
    # "station": provisioned with its own; "default": the server's ocpp.security_profile
    securityProfileSource: Literal["station", "default"]
    lastSeen: str | None
    lastBootAt: str | None
    # "1.6" or "2.0.1": the version of the open connection; None while disconnected
    ocppVersion: str | None
    connectors: list[ConnectorView]
    # 2.0.1 stations while connected: EVSEs with their connectors; None otherwise
    evses: list[EvseView] | None

    @classmethod
    def of(cls, station: Station, live: LiveStation | None, default_profile: int) -> StationView:
        """The stored station, with what the hub knows while it is connected; its security
        profile is its own or else `default_profile` (the server's)."""
        last_seen = station.last_seen
        if live is not None and (last_seen is None or live.last_seen > last_seen):
            last_seen = live.last_seen
        return cls(
            id=station.id, connected=live is not None, vendor=station.vendor,
            model=station.model, serialNumber=station.serial_number,
            firmwareVersion=station.firmware_version,
            firmwareStatus=live.firmware_status if live else None,
            diagnosticsStatus=live.diagnostics_status if live else None,
            provisioned=station.provisioned, passwordSet=bool(station.password_hash),
            securityProfile=station.profile(default_profile),
            securityProfileSource="default" if station.security_profile is None else "station",
            lastSeen=isoformat(last_seen), lastBootAt=isoformat(station.last_boot_at),
            ocppVersion=live.version.name if live else None,
            connectors=[ConnectorView(
                connectorId=c.connector_id, status=c.status, errorCode=c.error_code,
                info=c.info, vendorErrorCode=c.vendor_error_code,
                updatedAt=isoformat(c.updated_at)) for c in station.connectors],
            evses=_evses(station, live))


def _evses(station: Station, live: LiveStation | None) -> list[EvseView] | None:
    if live is None or live.version.name != "2.0.1":
        return None
    reported = live.evse_connectors
    return [EvseView(
        evseId=c.connector_id, status=c.status, errorCode=c.error_code,
        updatedAt=isoformat(c.updated_at),
        connectors=[EvseConnectorView(connectorId=n, status=status)
                    for n, status in sorted(reported.get(c.connector_id, {}).items())])
        for c in station.connectors if c.connector_id > 0]


class FrameView(BaseModel):
    at: str | None
    direction: str
    frame: str

    @classmethod
    def of(cls, frame: LoggedFrame) -> FrameView:
        return cls(at=isoformat(frame.at), direction=frame.direction, frame=frame.frame)


class CommandResult(BaseModel):
    action: str
    response: dict[str, Any]


class MeterValueView(BaseModel):
    timestamp: str | None
    measurand: str
    value: str
    unit: str | None
    phase: str | None
    context: str | None
    location: str | None

    @classmethod
    def of(cls, value: MeterValue) -> MeterValueView:
        return cls(timestamp=isoformat(value.timestamp), measurand=value.measurand,
                   value=value.value, unit=value.unit, phase=value.phase,
                   context=value.context, location=value.location)


class TransactionView(BaseModel):
    id: int  # our key: GET /api/transactions/{id}; the same as transactionId for 1.6
    # 1.6: our integer id; 2.0.1: the station's own id (a string, unique per station only:
    # GET /api/transactions/{transactionId}?stationId=... addresses it)
    transactionId: int | str
    ocppVersion: str  # "1.6" or "2.0.1"
    stationId: str
    connectorId: int
    idTag: str
    meterStart: int
    meterStop: int | None
    energyWh: int
    startedAt: str | None
    stoppedAt: str | None
    stopReason: str | None
    sessionId: str | None

    @classmethod
    def fields_of(cls, tx: Transaction, session_id: str | None) -> dict[str, Any]:
        station_id = tx.station_transaction_id
        return dict(
            id=tx.transaction_id,
            transactionId=tx.transaction_id if station_id is None else station_id,
            ocppVersion=tx.ocpp_version, stationId=tx.station_id,
            connectorId=tx.connector_id, idTag=tx.id_tag, meterStart=tx.meter_start,
            meterStop=tx.meter_stop, energyWh=tx.energy_wh, startedAt=isoformat(tx.started_at),
            stoppedAt=isoformat(tx.stopped_at), stopReason=tx.stop_reason, sessionId=session_id)

    @classmethod
    def of(cls, tx: Transaction, session_id: str | None) -> TransactionView:
        return cls(**cls.fields_of(tx, session_id))


class TransactionDetail(TransactionView):
    meterValues: list[MeterValueView]

    @classmethod
    def with_values(cls, tx: Transaction, session_id: str | None,
                    values: list[MeterValue]) -> TransactionDetail:
        return cls(**cls.fields_of(tx, session_id),
                   meterValues=[MeterValueView.of(v) for v in values])


class OrphanStopView(BaseModel):
    stationId: str
    transactionId: int
    meterStop: int
    stoppedAt: str | None
    reason: str | None
    idTag: str | None
    receivedAt: str | None

    @classmethod
    def of(cls, stop: OrphanStop) -> OrphanStopView:
        return cls(stationId=stop.station_id, transactionId=stop.transaction_id,
                   meterStop=stop.meter_stop, stoppedAt=isoformat(stop.stopped_at),
                   reason=stop.reason, idTag=stop.id_tag, receivedAt=isoformat(stop.received_at))


class IdTagView(BaseModel):
    idTag: str
    status: str
    expiryDate: str | None
    parentIdTag: str | None

    @classmethod
    def of(cls, tag: IdTag) -> IdTagView:
        return cls(idTag=tag.id_tag, status=tag.status, expiryDate=isoformat(tag.expiry_date),
                   parentIdTag=tag.parent_id_tag)


class TariffView(BaseModel):
    stationId: str
    pricePerKwh: str
    fixedConnectionFee: str
    currency: str
    default: bool

    @classmethod
    async def of(cls, service: BillingService, station_id: str) -> TariffView:
        """The tariff the station prices with, and whether it is the default one."""
        tariff = await service.tariff_for(station_id)
        override = await service.store.station_tariff(station_id)
        return cls(stationId=station_id, pricePerKwh=str(tariff.price_per_kwh),
                   fixedConnectionFee=str(tariff.fixed_connection_fee),
                   currency=tariff.currency, default=override is None)


class JobView(BaseModel):
    jobId: str
    kind: str
    sessionId: str
    status: str
    attempts: int
    reason: str | None
    nextAttemptAt: str | None
    lastError: str | None
    createdAt: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(jobId=job.job_id, kind=job.kind.value, sessionId=job.session_id,
                   status=job.status.value, attempts=job.attempts,
                   reason=job.payload.get("reason"),
                   nextAttemptAt=isoformat(job.next_attempt_at), lastError=job.last_error,
                   createdAt=isoformat(job.created_at), updatedAt=isoformat(job.updated_at))


class SessionDetail(SessionView):
    jobs: list[JobView]


class RefundView(BaseModel):
    idempotencyKey: str
    amount: int
    status: str
    jobId: str


class RefundAccepted(BaseModel):
    success: Literal[True] = True
    refund: RefundView


class JobAccepted(BaseModel):
    success: Literal[True] = True
    job: JobView
