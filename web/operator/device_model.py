"""`GET /api/stations/{id}/variables`: the station's device model from its latest complete
report (OCPP 2.0.1 GetBaseReport / GetReport -> NotifyReport parts), one row per variable
attribute. The dashboard's station page shows the same read model."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from csms.device_model import DeviceReport, ReportedVariable
from csms.domain import isoformat
from csms.keys import STORE
from web.apidoc import documented
from web.errors import ApiError

routes = web.RouteTableDef()


class ReportedVariableView(BaseModel):
    component: str
    componentInstance: str | None
    evseId: int | None
    connectorId: int | None
    variable: str
    variableInstance: str | None
    attributeType: str  # Actual | Target | MinSet | MaxSet
    value: str | None
    mutability: str  # ReadOnly | WriteOnly | ReadWrite
    persistent: bool
    constant: bool
    dataType: str | None
    unit: str | None
    minLimit: float | None
    maxLimit: float | None
    valuesList: str | None
    supportsMonitoring: bool | None

    @classmethod
    def of(cls, v: ReportedVariable) -> ReportedVariableView:
        return cls(component=v.component, componentInstance=v.component_instance,
                   evseId=v.evse_id, connectorId=v.connector_id, variable=v.variable,
                   variableInstance=v.variable_instance, attributeType=v.attribute_type,
                   value=v.value, mutability=v.mutability, persistent=v.persistent,
                   constant=v.constant, dataType=v.data_type, unit=v.unit,
                   minLimit=v.min_limit, maxLimit=v.max_limit, valuesList=v.values_list,
                   supportsMonitoring=v.supports_monitoring)


class DeviceReportView(BaseModel):
    stationId: str
    requestId: int
    generatedAt: str  # when the station generated the report's first part
    completedAt: str  # when its last part arrived
    parts: int
    variables: list[ReportedVariableView]

    @classmethod
    def of(cls, report: DeviceReport) -> DeviceReportView:
        return cls(stationId=report.station_id, requestId=report.request_id,
                   generatedAt=isoformat(report.generated_at) or "",
                   completedAt=isoformat(report.completed_at) or "", parts=report.parts,
                   variables=[ReportedVariableView.of(v) for v in report.variables])


async def latest_report(request: web.Request, station_id: str) -> DeviceReportView | None:
    report = await request.config_dict[STORE].latest_report(station_id)
    return None if report is None else DeviceReportView.of(report)


@routes.get("/stations/{station_id}/variables", name="station_variables")
@documented("The station's device model from its latest complete report (OCPP 2.0.1: send "
            "GetBaseReport through the command endpoint; the NotifyReport parts are kept and "
            "a report replaces the previous one once its last part arrives). 404 "
            "`no_report` until a report has completed", response=DeviceReportView,
            errors=(404,))
async def station_variables(request: web.Request) -> web.Response:
    station_id = request.match_info["station_id"]
    if await request.config_dict[STORE].get_station(station_id) is None:
        raise ApiError(404, "not_found", "unknown station")
    view = await latest_report(request, station_id)
    if view is None:
        raise ApiError(404, "no_report", f"station {station_id} has not completed a report")
    return web.json_response(view.model_dump())
