"""The sandbox gateway: a real, deterministic implementation of the payment gateway port.

Used by default (`billing.gateway = "sandbox"`) and in tests. Test values:

- a `card_token`, `network_token` or saved `card_id` starting with "tok_decline" is declined
  (a saved card that stopped working); so is a wallet payment token (a Google Pay or Apple Pay
  JSON token, see `billing.gateways.wallets`) whose `signature` starts with "tok_decline";
  anything else is approved and the hold is "authorized". A JSON `network_token` that is no
  complete wallet token fails (status "failed"), as Pagar.me refuses it;
- `save_card` keeps a card token (or an opaque test network token) as a saved card; a wallet
  payment token is a one-time device token and is never saved (as with Pagar.me);
- a PIX charge stays "pending" until `mark_pix_paid(charge_id)` is called (the sandbox webhook
  handler does so on `POST /webhooks/sandbox {"type": "charge.paid", "data": {"id": ...}}`).

Allowed moves: capture (amount <= authorized) and void only from "authorized"; refund only from
"paid", "captured" or "partially_refunded", never more than paid/captured minus refunded. Any
other move returns success=False, status "failed", transient=False and an error naming the move.

Idempotency: a create (authorize / create_pix) registers its key with `put_if_absent`, so the
same key returns the first charge. Capture, void and refund record their result under the key
inside the charge, in the same compare-and-set that changes the charge, so a repeated call (or a
retry after a crash) returns the stored result and never applies a second effect.

State lives in a `SandboxChargeStore`: `InMemorySandboxChargeStore` or
`SqliteSandboxChargeStore(path)`, which survives restarts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from billing.gateways.base import Customer, GatewayResult
from billing.gateways.wallets import WalletTokenError, is_test_decline, parse_wallet_token

DECLINE_PREFIX = "tok_decline"

# A move inspects the current charge and returns (changes or None when refused, result).
Move = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, GatewayResult]]


class SandboxChargeStore(Protocol):
    """Persistence for sandbox charges (a charge is a JSON-serializable dict with "id",
    "status" and "version")."""

    async def get(self, charge_id: str) -> dict[str, Any] | None:
        """The charge, or None."""
        ...

    async def put_if_absent(self, key: str, charge: dict[str, Any]) -> dict[str, Any]:
        """Store `charge` under idempotency `key` unless the key is known; return the charge
        stored for the key (the first one)."""
        ...

    async def update(
        self,
        charge_id: str,
        expected_status: str,
        changes: dict[str, Any],
        *,
        expected_version: int | None = None,
    ) -> dict[str, Any] | None:
        """Compare-and-set: apply `changes` (top-level keys) only if the charge is in
        `expected_status` (and at `expected_version`, when given); bump "version".
        Returns the updated charge, or None when the charge is missing or the check failed."""
        ...


class InMemorySandboxChargeStore:
    """Sandbox charges in a dict (lost on restart). Safe under asyncio: no awaits inside."""

    def __init__(self) -> None:
        self._charges: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}

    async def get(self, charge_id: str) -> dict[str, Any] | None:
        charge = self._charges.get(charge_id)
        return copy.deepcopy(charge) if charge is not None else None

    async def put_if_absent(self, key: str, charge: dict[str, Any]) -> dict[str, Any]:
        existing = self._keys.get(key)
        if existing is not None:
            return copy.deepcopy(self._charges[existing])
        stored = {**copy.deepcopy(charge), "version": 1}
        self._charges[stored["id"]] = stored
        self._keys[key] = stored["id"]
        return copy.deepcopy(stored)

    async def update(
        self,
        charge_id: str,
        expected_status: str,
        changes: dict[str, Any],
        *,
        expected_version: int | None = None,
    ) -> dict[str, Any] | None:
        charge = self._charges.get(charge_id)
        if charge is None or charge["status"] != expected_status:
            return None
        if expected_version is not None and charge["version"] != expected_version:
            return None
        charge.update(copy.deepcopy(changes))
        charge["version"] += 1
        return copy.deepcopy(charge)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_charges (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_idempotency (
    key TEXT PRIMARY KEY,
    charge_id TEXT NOT NULL REFERENCES sandbox_charges(id)
);
"""


class SqliteSandboxChargeStore:
    """Sandbox charges in SQLite (own aiosqlite connection, WAL). Opens lazily on first use;
    call `close()` (or use `async with`) when done. Each write is one IMMEDIATE transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(_SCHEMA)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> SqliteSandboxChargeStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _conn(self) -> aiosqlite.Connection:
        await self.open()
        assert self._db is not None
        return self._db

    async def get(self, charge_id: str) -> dict[str, Any] | None:
        db = await self._conn()
        async with db.execute("SELECT data FROM sandbox_charges WHERE id = ?", (charge_id,)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else None

    async def put_if_absent(self, key: str, charge: dict[str, Any]) -> dict[str, Any]:
        db = await self._conn()
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute(
                    "SELECT c.data FROM sandbox_idempotency i JOIN sandbox_charges c"
                    " ON c.id = i.charge_id WHERE i.key = ?",
                    (key,),
                ) as cur:
                    row = await cur.fetchone()
                if row:
                    await db.execute("COMMIT")
                    return json.loads(row[0])
                stored = {**charge, "version": 1}
                await db.execute(
                    "INSERT INTO sandbox_charges (id, status, version, data) VALUES (?, ?, ?, ?)",
                    (stored["id"], stored["status"], 1, json.dumps(stored)),
                )
                await db.execute(
                    "INSERT INTO sandbox_idempotency (key, charge_id) VALUES (?, ?)",
                    (key, stored["id"]),
                )
                await db.execute("COMMIT")
                return stored
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def update(
        self,
        charge_id: str,
        expected_status: str,
        changes: dict[str, Any],
        *,
        expected_version: int | None = None,
    ) -> dict[str, Any] | None:
        db = await self._conn()
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute(
                    "SELECT version, data FROM sandbox_charges WHERE id = ? AND status = ?",
                    (charge_id, expected_status),
                ) as cur:
                    row = await cur.fetchone()
                if row is None or (expected_version is not None and row[0] != expected_version):
                    await db.execute("COMMIT")
                    return None
                charge = {**json.loads(row[1]), **changes, "version": row[0] + 1}
                await db.execute(
                    "UPDATE sandbox_charges SET status = ?, version = ?, data = ?"
                    " WHERE id = ? AND version = ?",
                    (charge["status"], charge["version"], json.dumps(charge), charge_id, row[0]),
                )
                await db.execute("COMMIT")
                return charge
            except BaseException:
                await db.execute("ROLLBACK")
                raise


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _failure(error: str, amount: int, charge: dict[str, Any] | None = None) -> GatewayResult:
    """A final, refused operation (invalid move or bad input)."""
    return GatewayResult(
        success=False,
        status="failed",
        amount=amount,
        order_id=charge["order_id"] if charge else None,
        charge_id=charge["id"] if charge else None,
        error=error,
        raw=_public(charge) if charge else {},
    )


def _public(charge: dict[str, Any]) -> dict[str, Any]:
    """The charge as `raw`, without the stored operation results."""
    return {k: v for k, v in charge.items() if k != "operations"}


class SandboxGateway:
    """Deterministic gateway with persisted state; see the module docstring for the rules."""

    name = "sandbox"

    # How many times a compare-and-set is retried when a concurrent change wins the race.
    _CAS_ATTEMPTS = 20

    def __init__(self, store: SandboxChargeStore | None = None) -> None:
        self.store: SandboxChargeStore = store or InMemorySandboxChargeStore()

    async def open(self) -> None:
        if isinstance(self.store, SqliteSandboxChargeStore):
            await self.store.open()

    async def close(self) -> None:
        if isinstance(self.store, SqliteSandboxChargeStore):
            await self.store.close()

    # -- creates ---------------------------------------------------------------------------

    async def authorize(
        self,
        *,
        session_id: str,
        amount: int,
        customer: Customer,
        card_token: str | None = None,
        network_token: str | None = None,
        card_id: str | None = None,
        save_card: bool = False,
        description: str,
        idempotency_key: str,
    ) -> GatewayResult:
        """Auth only. "tok_decline..." test tokens (or wallet signatures) are declined; everything
        else is authorized."""
        if not _valid_amount(amount):
            return _failure(f"amount must be a positive integer of cents: {amount!r}", 0)
        sources = [s for s in (card_token, network_token, card_id) if s]
        if len(sources) != 1:
            return _failure(
                "exactly one of card_token, network_token or card_id is required", amount
            )
        wallet = None
        if network_token:
            try:
                wallet = parse_wallet_token(network_token)
            except WalletTokenError as exc:
                return _failure(f"network_token is not a wallet payment token: {exc}", amount)
        token = card_token or network_token or card_id or ""
        declined = is_test_decline(token, DECLINE_PREFIX)
        charge = self._new_charge(session_id, amount, customer, description, "credit_card")
        charge["status"] = "declined" if declined else "authorized"
        charge["authorized_amount"] = 0 if declined else amount
        if wallet is not None:
            charge["wallet"] = wallet.kind
        if save_card and not declined and wallet is None:
            charge["card_reference"] = card_id or _new_id("card")
        charge["card_last4"] = _last4(token)
        result = GatewayResult(
            success=not declined,
            status=charge["status"],
            amount=amount,
            order_id=charge["order_id"],
            charge_id=charge["id"],
            error="card declined (sandbox test token)" if declined else None,
            raw=_public(charge),
            captured_amount=0,
            refunded_amount=0,
            card_reference=charge.get("card_reference"),
            card_last4=charge["card_last4"],
        )
        return await self._create(idempotency_key, charge, result)

    async def create_pix(
        self,
        *,
        session_id: str,
        amount: int,
        customer: Customer,
        expires_in: int,
        description: str,
        idempotency_key: str,
    ) -> GatewayResult:
        """A pending PIX charge with a fake but well-formed QR code, URL and expiry."""
        if not _valid_amount(amount):
            return _failure(f"amount must be a positive integer of cents: {amount!r}", 0)
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            return _failure(
                f"expires_in must be a positive number of seconds: {expires_in!r}", amount
            )
        charge = self._new_charge(session_id, amount, customer, description, "pix")
        charge["status"] = "pending"
        charge["authorized_amount"] = 0
        charge["pix_qr_code"] = _pix_copy_paste(charge["id"], amount)
        charge["pix_qr_code_url"] = f"https://sandbox.invalid/pix/{charge['id']}/qrcode.png"
        charge["pix_expires_at"] = _iso(_now() + timedelta(seconds=expires_in))
        result = self._result(charge, amount=amount)
        return await self._create(idempotency_key, charge, result)

    def _new_charge(
        self, session_id: str, amount: int, customer: Customer, description: str, method: str
    ) -> dict[str, Any]:
        return {
            "id": _new_id("ch"),
            "order_id": _new_id("or"),
            "session_id": session_id,
            "payment_method": method,
            "amount": amount,
            "captured_amount": 0,
            "voided_amount": 0,
            "paid_amount": 0,
            "refunded_amount": 0,
            "card_reference": None,
            "pix_qr_code": None,
            "pix_qr_code_url": None,
            "pix_expires_at": None,
            "customer": {
                "name": customer.name,
                "email": customer.email,
                "document": customer.document,
            },
            "description": description,
            "created_at": _iso(_now()),
            "operations": {},
        }

    async def _create(
        self, key: str, charge: dict[str, Any], result: GatewayResult
    ) -> GatewayResult:
        charge["operations"] = {key: result.to_dict()}
        stored = await self.store.put_if_absent(key, charge)
        return GatewayResult.from_dict(stored["operations"][key])

    # -- moves on an existing charge -------------------------------------------------------

    async def capture(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """Capture `amount` <= authorized from an "authorized" hold; the rest is released."""

        def move(charge: dict[str, Any]) -> tuple[dict[str, Any] | None, GatewayResult]:
            if not _valid_amount(amount):
                return None, _failure(
                    f"capture amount must be a positive integer: {amount!r}", 0, charge
                )
            if charge["status"] != "authorized":
                return None, _failure(
                    f"cannot capture charge {charge_id}: it is {charge['status']}, not authorized",
                    amount,
                    charge,
                )
            if amount > charge["authorized_amount"]:
                return None, _failure(
                    f"cannot capture {amount}: only {charge['authorized_amount']} is authorized",
                    amount,
                    charge,
                )
            changes = {"status": "captured", "captured_amount": amount, "paid_amount": amount}
            return changes, self._result({**charge, **changes}, amount=amount)

        return await self._move(charge_id, idempotency_key, amount, move)

    async def void(
        self, *, charge_id: str, amount: int | None, idempotency_key: str
    ) -> GatewayResult:
        """Release an "authorized" hold, or cancel a PIX charge still "pending" (unpaid), as
        Pagar.me's DELETE /charges/{id} does. The sandbox releases the whole hold; `amount`,
        when given, must not exceed it."""

        def move(charge: dict[str, Any]) -> tuple[dict[str, Any] | None, GatewayResult]:
            if charge["status"] == "pending" and charge.get("payment_method") == "pix":
                changes = {"status": "voided", "voided_amount": 0}
                return changes, self._result({**charge, **changes}, amount=charge["amount"])
            held = charge["authorized_amount"]
            if amount is not None and (not _valid_amount(amount) or amount > held):
                return None, _failure(
                    f"cannot void {amount!r}: the hold is {held}", amount or 0, charge
                )
            if charge["status"] != "authorized":
                return None, _failure(
                    f"cannot void charge {charge_id}: it is {charge['status']}, not authorized",
                    amount or 0,
                    charge,
                )
            changes = {"status": "voided", "voided_amount": held}
            return changes, self._result({**charge, **changes}, amount=held)

        return await self._move(charge_id, idempotency_key, amount or 0, move)

    async def refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """Refund part or all of a "paid" / "captured" / "partially_refunded" charge."""

        def move(charge: dict[str, Any]) -> tuple[dict[str, Any] | None, GatewayResult]:
            if not _valid_amount(amount):
                return None, _failure(
                    f"refund amount must be a positive integer: {amount!r}", 0, charge
                )
            if charge["status"] not in ("paid", "captured", "partially_refunded"):
                return None, _failure(
                    f"cannot refund charge {charge_id}: it is {charge['status']}, not paid",
                    amount,
                    charge,
                )
            refundable = charge["paid_amount"] - charge["refunded_amount"]
            if amount > refundable:
                return None, _failure(
                    f"cannot refund {amount}: only {refundable} is refundable", amount, charge
                )
            refunded = charge["refunded_amount"] + amount
            status = "refunded" if refunded == charge["paid_amount"] else "partially_refunded"
            changes = {"status": status, "refunded_amount": refunded}
            return changes, self._result({**charge, **changes}, amount=amount)

        return await self._move(charge_id, idempotency_key, amount, move)

    async def fetch(self, *, charge_id: str) -> GatewayResult:
        """The charge's current state."""
        charge = await self.store.get(charge_id)
        if charge is None:
            return _failure(f"charge {charge_id} not found", 0)
        return self._result(charge, amount=charge["amount"])

    async def mark_pix_paid(self, charge_id: str) -> GatewayResult:
        """Simulate the customer paying a pending PIX charge (idempotent: paying a paid charge
        returns its state). Returns the charge state, or a failure for unknown / non-PIX /
        canceled charges."""
        for _ in range(self._CAS_ATTEMPTS):
            charge = await self.store.get(charge_id)
            if charge is None:
                return _failure(f"charge {charge_id} not found", 0)
            if charge["payment_method"] != "pix":
                return _failure(f"charge {charge_id} is not a PIX charge", 0, charge)
            if charge["status"] != "pending":
                if charge["status"] in ("paid", "partially_refunded", "refunded"):
                    return self._result(charge, amount=charge["amount"])
                return _failure(
                    f"cannot pay charge {charge_id}: it is {charge['status']}", 0, charge
                )
            changes = {"status": "paid", "paid_amount": charge["amount"], "paid_at": _iso(_now())}
            updated = await self.store.update(
                charge_id, "pending", changes, expected_version=charge["version"]
            )
            if updated is not None:
                return self._result(updated, amount=updated["amount"])
        return _failure(f"charge {charge_id} kept changing; try again", 0)

    async def _move(self, charge_id: str, key: str, amount: int, move: Move) -> GatewayResult:
        """Apply `move` with compare-and-set, storing its result under `key` in the charge."""
        for _ in range(self._CAS_ATTEMPTS):
            charge = await self.store.get(charge_id)
            if charge is None:
                return _failure(f"charge {charge_id} not found", amount)
            if key in charge["operations"]:
                return GatewayResult.from_dict(charge["operations"][key])
            changes, result = move(charge)
            if changes is None:
                return result
            changes["operations"] = {**charge["operations"], key: result.to_dict()}
            updated = await self.store.update(
                charge_id, charge["status"], changes, expected_version=charge["version"]
            )
            if updated is not None:
                return result
        return GatewayResult(
            success=False,
            status="failed",
            amount=amount,
            charge_id=charge_id,
            transient=True,
            error=f"charge {charge_id} kept changing; retry with the same idempotency key",
        )

    @staticmethod
    def _result(charge: dict[str, Any], *, amount: int) -> GatewayResult:
        return GatewayResult(
            success=charge["status"] not in ("declined", "failed"),
            status=charge["status"],
            amount=amount,
            order_id=charge["order_id"],
            charge_id=charge["id"],
            raw=_public(charge),
            pix_qr_code=charge["pix_qr_code"],
            pix_qr_code_url=charge["pix_qr_code_url"],
            pix_expires_at=charge["pix_expires_at"],
            captured_amount=charge["captured_amount"],
            refunded_amount=charge["refunded_amount"],
            card_reference=charge["card_reference"],
            card_last4=charge.get("card_last4"),
        )


def _last4(token: str) -> str:
    """The sandbox's card number ends in the token's last four digits ("tok_123456789": 6789),
    so a test can tell which card a receipt shows."""
    return "".join(c for c in token if c.isdigit())[-4:].rjust(4, "0")


def _valid_amount(amount: object) -> bool:
    return isinstance(amount, int) and not isinstance(amount, bool) and amount > 0


def _pix_copy_paste(charge_id: str, amount: int) -> str:
    """A fake PIX "copia e cola" payload in EMV format (BR Code) with a CRC16 checksum."""

    def field(tag: str, value: str) -> str:
        return f"{tag}{len(value):02d}{value}"

    account = field("00", "br.gov.bcb.pix") + field("25", f"sandbox.invalid/qr/{charge_id}")
    payload = (
        field("00", "01")
        + field("01", "12")
        + field("26", account)
        + field("52", "0000")
        + field("53", "986")
        + field("54", f"{amount // 100}.{amount % 100:02d}")
        + field("58", "BR")
        + field("59", "CSMS SANDBOX")
        + field("60", "SAO PAULO")
        + field("62", field("05", charge_id[-25:]))
        + "6304"
    )
    return payload + f"{_crc16(payload):04X}"


def _crc16(data: str) -> int:
    """CRC-16/CCITT-FALSE, as used by the BR Code standard."""
    crc = 0xFFFF
    for byte in data.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc
