"""`/tariffs` and `/id-tags`: view and edit, validated by the operator API's request models."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from csms.domain import IdTag, parse_timestamp
from csms.keys import STORE
from web.dashboard.render import flash, page, see_other
from web.keys import BILLING
from web.operator.routes import IdTagRequest, TariffRequest
from web.operator.views import IdTagView, TariffView

routes = web.RouteTableDef()


def _problem(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _fields(form: Any, *names: str) -> dict[str, str | None]:
    return {name: (str(form.get(name, "")).strip() or None) for name in names}


@routes.get("/tariffs", name="dash_tariffs")
async def tariffs(request: web.Request) -> web.Response:
    """Tariffs."""
    service = request.config_dict[BILLING]
    stations = await request.config_dict[STORE].list_stations()
    return await page(request, "tariffs.html", default=service.settings.billing.tariff,
                      tariffs=[await TariffView.of(service, s.id) for s in stations])


@routes.post("/tariffs/{station_id}", name="dash_tariff")
async def set_tariff(request: web.Request) -> web.Response:
    """Set a station's tariff (form)."""
    station_id = request.match_info["station_id"]
    if await request.config_dict[STORE].get_station(station_id) is None:
        raise web.HTTPNotFound(text="unknown station")
    try:
        body = TariffRequest.model_validate(
            _fields(await request.post(), "pricePerKwh", "fixedConnectionFee"))
    except ValidationError as exc:
        await flash(request, "error", f"Tariff for {station_id} not saved: {_problem(exc)}")
    else:
        await request.config_dict[BILLING].store.set_station_tariff(
            station_id, str(body.pricePerKwh), str(body.fixedConnectionFee))
        await flash(request, "ok", f"Tariff for {station_id} saved; new sessions price with it")
    raise see_other(request, "dash_tariffs")


@routes.get("/id-tags", name="dash_id_tags")
async def id_tags(request: web.Request) -> web.Response:
    """Id tags."""
    tags = await request.config_dict[STORE].list_id_tags()
    return await page(request, "id_tags.html", tags=[IdTagView.of(t) for t in tags])


@routes.post("/id-tags", name="dash_id_tag")
async def put_id_tag(request: web.Request) -> web.Response:
    """Add or update an id tag (form)."""
    fields = _fields(await request.post(), "idTag", "status", "expiryDate", "parentIdTag")
    id_tag = fields.pop("idTag") or ""
    try:
        if not 1 <= len(id_tag) <= 20:
            raise ValueError("idTag must be 1 to 20 characters")
        body = IdTagRequest.model_validate({k: v for k, v in fields.items() if v is not None})
        expiry = parse_timestamp(body.expiryDate) if body.expiryDate else None
    except ValidationError as exc:
        await flash(request, "error", f"Id tag not saved: {_problem(exc)}")
    except ValueError as exc:
        await flash(request, "error", f"Id tag not saved: {exc}")
    else:
        await request.config_dict[STORE].upsert_id_tag(
            IdTag(id_tag, body.status, expiry, body.parentIdTag))
        await flash(request, "ok", f"Id tag {id_tag} saved ({body.status})")
    raise see_other(request, "dash_id_tags")
