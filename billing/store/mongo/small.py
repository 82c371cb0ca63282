"""Saved cards, station tariffs and webhook dedup: one document each, upserted or inserted."""

from __future__ import annotations

import json
from typing import Any

from billing.models import SavedCard
from billing.store.mongo.base import CARDS, TARIFFS, WEBHOOKS, BillingConnection, now
from billing.store.values import check_decimal_text
from csms.store.mongo_support import insert_once, utc_req


class SmallCollections(BillingConnection):
    async def save_card(self, card: SavedCard) -> None:
        """Upsert by driver_id_tag: the new card replaces the old one entirely."""
        await self._coll(CARDS).update_one(
            {"_id": card.driver_id_tag},
            {"$set": {"card": {"card_reference": card.card_reference, "email": card.email,
                               "cpf": card.cpf, "created_at": card.created_at}}}, upsert=True)

    async def saved_card(self, driver_id_tag: str) -> SavedCard | None:
        doc = await self._coll(CARDS).find_one({"_id": driver_id_tag})
        if doc is None:
            return None
        card = doc["card"]
        return SavedCard(driver_id_tag, card["card_reference"], card.get("email"),
                         card.get("cpf"), utc_req(card["created_at"]))

    async def station_tariff(self, station_id: str) -> tuple[str, str] | None:
        doc = await self._coll(TARIFFS).find_one({"_id": station_id})
        if doc is None:
            return None
        return doc["tariff"]["price_per_kwh"], doc["tariff"]["fixed_connection_fee"]

    async def set_station_tariff(self, station_id: str, price_per_kwh: str,
                                 fixed_connection_fee: str) -> None:
        check_decimal_text("price_per_kwh", price_per_kwh)
        check_decimal_text("fixed_connection_fee", fixed_connection_fee)
        await self._coll(TARIFFS).update_one(
            {"_id": station_id},
            {"$set": {"tariff": {"price_per_kwh": price_per_kwh,
                                 "fixed_connection_fee": fixed_connection_fee,
                                 "updated_at": now()}}}, upsert=True)

    async def record_webhook(self, gateway: str, event_id: str, body: dict[str, Any]) -> bool:
        return await insert_once(self._coll(WEBHOOKS), {
            "gateway": gateway, "event_id": event_id, "body": json.dumps(body),
            "received_at": now()})

    async def forget_webhook(self, gateway: str, event_id: str) -> None:
        await self._coll(WEBHOOKS).delete_one({"gateway": gateway, "event_id": event_id})
