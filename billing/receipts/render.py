"""Receipt content: a frozen snapshot of a finished session, rendered to HTML and plain text.

Amounts are integer cents shown with `billing.money.format_cents` ("BRL 20.52"); energy is shown
in kWh with exactly three decimals; times are shown in UTC. Personal and payment data are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from billing.models import Method, Session
from billing.money import CENT, format_cents, to_decimal
from billing.settings import ReceiptSettings
from billing.tariffs import energy_cost_cents

METHOD_LABELS = {
    "CREDIT_CARD": "Cartão de crédito / Credit card",
    "PIX": "PIX",
    "WALLET": "Carteira digital / Digital wallet",
    "VIP": "VIP",
    "GOOGLE_PAY": "Google Pay",
    "APPLE_PAY": "Apple Pay",
}


@dataclass(frozen=True)
class ReceiptData:
    """Everything a receipt shows. Amounts in integer cents; tariff as decimal strings."""

    receipt_number: int
    session_id: str
    issued_at: datetime
    operator_name: str
    operator_tax_id: str
    operator_address: str
    station_id: str
    connector_id: int
    started_at: datetime | None
    stopped_at: datetime | None
    energy_wh: int
    price_per_kwh: str
    fixed_connection_fee: str
    currency: str
    total_charged: int  # what the driver finally pays (0 for VIP)
    authorized_amount: int  # held (card/wallet) or paid upfront (PIX)
    released_amount: int  # released from a card hold: authorized - captured; 0 otherwise
    refunds: Sequence[tuple[int, datetime]]  # (amount_cents, at)
    refunded_total: int
    method: str
    payment_reference: str | None  # card reference / token / charge id, shown masked
    cpf: str | None
    email: str | None
    waived: bool  # VIP: cost recorded, nothing charged
    cost_cents: int | None = None  # session cost; None: computed from the tariff snapshot

    @property
    def cost(self) -> int:
        """The session cost in cents (fixed fee + energy x price, rounded half-up)."""
        if self.cost_cents is not None:
            return self.cost_cents
        return energy_cost_cents(
            self.energy_wh, to_decimal(self.price_per_kwh), to_decimal(self.fixed_connection_fee)
        )


def mask_cpf(cpf: str | None) -> str:
    """Brazilian masking, only the middle digits shown: "12345678900" -> "***.456.789-**"."""
    if not cpf:
        return ""
    digits = "".join(ch for ch in cpf if ch.isdigit())
    if len(digits) != 11:
        return "***.***.***-**"
    return f"***.{digits[3:6]}.{digits[6:9]}-**"


def _payment_reference(session: Session, method: Method) -> str | None:
    """Cards and wallets: the card's last digits as the gateway reported them, else the saved
    card's reference; never a charge id, which means nothing to the driver. PIX: the charge."""
    if method.is_card:
        return session.card_last4 or session.card_reference
    return session.card_reference or session.charge_id


def mask_reference(reference: str | None) -> str:
    """Keep only the last 4 characters: "card_123456789" -> "****6789" ("****" if too short).

    Four digits are a card's last four as the gateway reported them: shown ("****0010").
    """
    if not reference:
        return ""
    reference = reference.strip()
    shown = len(reference) > 4 or (len(reference) == 4 and reference.isdigit())
    return "****" + (reference[-4:] if shown else "")


def format_kwh(energy_wh: int) -> str:
    """Wh -> kWh with exactly three decimals, no float: 12345 -> "12.345"."""
    return str(Decimal(energy_wh).scaleb(-3).quantize(Decimal("0.001")))


def format_unit_amount(amount: str, currency: str) -> str:
    """A tariff amount (decimal string) with at least two decimals: "1.5" -> "BRL 1.50"."""
    value = to_decimal(amount)
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(CENT)
    return f"{currency} {value}"


def format_utc(moment: datetime | None) -> str:
    """UTC as "2026-11-22 10:00:00 UTC"; a naive datetime is taken as UTC; None -> "-"."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment(autoescape: bool) -> Environment:
    return Environment(
        loader=PackageLoader("billing.receipts", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_HTML = _environment(autoescape=True)
_TEXT = _environment(autoescape=False)


def _context(data: ReceiptData) -> dict[str, Any]:
    def money(cents: int) -> str:
        return format_cents(cents, data.currency)

    return {
        "r": data,
        "number": f"{data.receipt_number:08d}",
        "issued_at": format_utc(data.issued_at),
        "started_at": format_utc(data.started_at),
        "stopped_at": format_utc(data.stopped_at),
        "energy_kwh": format_kwh(data.energy_wh),
        "price_per_kwh": format_unit_amount(data.price_per_kwh, data.currency),
        "fixed_fee": format_unit_amount(data.fixed_connection_fee, data.currency),
        "cost": money(data.cost),
        "total_charged": money(data.total_charged),
        "authorized": money(data.authorized_amount),
        "released": money(data.released_amount),
        "refunds": [(money(cents), format_utc(at)) for cents, at in data.refunds],
        "refunded_total": money(data.refunded_total),
        "upfront": data.method == Method.PIX,
        "method_label": METHOD_LABELS.get(data.method, data.method),
        "reference": mask_reference(data.payment_reference),
        "cpf": mask_cpf(data.cpf),
    }


def render_receipt(data: ReceiptData) -> tuple[str, str]:
    """The receipt as (html, text)."""
    context = _context(data)
    html = _HTML.get_template("receipt.html").render(context)
    text = _TEXT.get_template("receipt.txt").render(context)
    return html, text


def receipt_data_from_session(
    session: Session,
    *,
    receipt_number: int,
    issued_at: datetime,
    operator: ReceiptSettings,
    refunds: Sequence[tuple[int, datetime]] = (),
    started_at: datetime | None = None,
    stopped_at: datetime | None = None,
) -> ReceiptData:
    """Build a ReceiptData from a finished session, following the money rules.

    Card/wallet: the driver pays captured - refunded; authorized - captured was released.
    PIX: the driver pays what was paid upfront minus refunds. VIP: cost shown, 0 charged.
    `refunds` are the succeeded REFUND operations; `started_at`/`stopped_at` default to the
    session's own times.
    """
    method = Method(session.method)
    waived = method == Method.VIP
    refunded = session.refunded_amount
    if waived:
        total, released = 0, 0
    elif method.is_card:
        total = session.captured_amount - refunded
        released = session.authorized_amount - session.captured_amount
    else:
        total, released = session.authorized_amount - refunded, 0
    return ReceiptData(
        receipt_number=receipt_number,
        session_id=session.session_id,
        issued_at=issued_at,
        operator_name=operator.operator_name,
        operator_tax_id=operator.operator_tax_id,
        operator_address=operator.operator_address,
        station_id=session.station_id,
        connector_id=session.connector_id,
        started_at=started_at or session.starting_at,
        stopped_at=stopped_at or session.ended_at,
        energy_wh=session.energy_wh,
        price_per_kwh=session.price_per_kwh,
        fixed_connection_fee=session.fixed_connection_fee,
        currency=session.currency,
        total_charged=max(total, 0),
        authorized_amount=0 if waived else session.authorized_amount,
        released_amount=max(released, 0),
        refunds=tuple(refunds),
        refunded_total=refunded,
        method=method.value,
        payment_reference=_payment_reference(session, method),
        cpf=session.cpf,
        email=session.email,
        waived=waived,
        cost_cents=session.cost_cents,
    )
