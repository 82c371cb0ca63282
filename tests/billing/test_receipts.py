"""Receipts: rendering, masking, and delivery to an outbox or a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from billing.models import Method, PaymentStatus, Session, SessionStatus
from billing.receipts import (
    FileMailer,
    MailError,
    PermanentMailError,
    ReceiptData,
    SmtpMailer,
    TransientMailError,
    format_kwh,
    make_mailer,
    make_message_id,
    mask_cpf,
    mask_reference,
    receipt_data_from_session,
    render_receipt,
)
from billing.settings import MailSettings, ReceiptSettings
from tests.support.net import free_port
from tests.support.smtp import SmtpInbox, StartSmtp

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 22, 10, 42, 7, tzinfo=UTC)


def card_receipt(**changes: Any) -> ReceiptData:
    data = ReceiptData(
        receipt_number=17,
        session_id="sess-abc",
        issued_at=T1,
        operator_name="Eletroposto Ltda",
        operator_tax_id="12.345.678/0001-90",
        operator_address="Av. Paulista, 1000 - São Paulo/SP",
        station_id="EVSE-001",
        connector_id=1,
        started_at=T0,
        stopped_at=T1,
        energy_wh=12_345,
        price_per_kwh="1.50",
        fixed_connection_fee="2.00",
        currency="BRL",
        total_charged=2052,
        authorized_amount=5000,
        released_amount=2948,
        refunds=[],
        refunded_total=0,
        method="CREDIT_CARD",
        payment_reference="card_123456789",
        cpf="12345678900",
        email="driver@example.com",
        waived=False,
    )
    return replace(data, **changes)


# --- rendering ---------------------------------------------------------------------------------


def test_masks_and_energy_format() -> None:
    assert mask_cpf("12345678900") == "***.456.789-**"
    assert mask_cpf("123.456.789-00") == "***.456.789-**"
    assert mask_cpf("123") == "***.***.***-**"
    assert mask_cpf(None) == ""
    assert mask_reference("card_123456789") == "****6789"
    assert mask_reference("abc") == "****"
    assert mask_reference(None) == ""
    assert format_kwh(12_345) == "12.345"
    assert format_kwh(0) == "0.000"
    assert format_kwh(5) == "0.005"
    assert format_kwh(1_000_000) == "1000.000"


def test_card_receipt_shows_amounts_and_masks_personal_data() -> None:
    html, text = render_receipt(card_receipt())
    for body in (html, text):
        assert "Recibo de recarga / Charging receipt" in body
        assert "00000017" in body
        assert "2026-11-22 10:42:07 UTC" in body  # issued / stopped
        assert "2026-11-22 10:00:00 UTC" in body  # started
        assert "Eletroposto Ltda" in body and "12.345.678/0001-90" in body
        assert "Av. Paulista, 1000" in body
        assert "EVSE-001" in body
        assert "12.345 kWh" in body
        assert "BRL 1.50/kWh" in body
        assert "BRL 2.00" in body
        assert "BRL 20.52" in body  # cost and total charged
        assert "BRL 50.00" in body  # held
        assert "BRL 29.48" in body  # released
        assert "****6789" in body
        assert "***.456.789-**" in body
        assert "sess-abc" in body
        assert "12345678900" not in body and "card_123456789" not in body
        assert "Waived" not in body
    assert "Total cobrado / Total charged: BRL 20.52" in text
    assert "Liberado da reserva / Released from hold: BRL 29.48" in text


def test_html_escapes_untrusted_values() -> None:
    data = card_receipt(station_id="<script>alert(1)</script>", operator_name="A & B")
    html, text = render_receipt(data)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A &amp; B" in html
    assert "<script>alert(1)</script>" in text  # plain text is not HTML


def test_vip_receipt_shows_cost_waived_and_nothing_charged() -> None:
    data = card_receipt(
        method="VIP",
        waived=True,
        total_charged=0,
        authorized_amount=0,
        released_amount=0,
        payment_reference=None,
    )
    html, text = render_receipt(data)
    for body in (html, text):
        assert "Waived" in body
        assert "BRL 20.52" in body  # the cost, computed from the tariff snapshot
        assert "BRL 0.00" in body
        assert "Amount held" not in body
    assert "Total cobrado / Total charged: BRL 0.00" in text


def test_pix_receipt_lists_refunds() -> None:
    data = card_receipt(
        method="PIX",
        authorized_amount=5000,
        released_amount=0,
        total_charged=2052,
        refunds=[(2000, datetime(2026, 11, 22, 11, 0, tzinfo=UTC)), (948, T1)],
        refunded_total=2948,
        payment_reference="ch_pix_98765",
    )
    html, text = render_receipt(data)
    for body in (html, text):
        assert "Paid upfront" in body
        assert "Released from hold" not in body
        assert "BRL 20.00 (2026-11-22 11:00:00 UTC)" in body
        assert "BRL 9.48 (2026-11-22 10:42:07 UTC)" in body
        assert "BRL 29.48" in body  # total refunded
        assert "BRL 20.52" in body
        assert "****8765" in body
    assert "Total estornado / Total refunded: BRL 29.48" in text


def make_session(method: Method, **changes: Any) -> Session:
    session = Session(
        session_id="S-1",
        station_id="EVSE-9",
        connector_id=2,
        method=method,
        id_tag="tag",
        requested_amount=5000,
        email="ana@example.com",
        cpf="12345678909",
        currency="BRL",
        price_per_kwh="1.50",
        fixed_connection_fee="2.00",
        status=SessionStatus.COMPLETED,
        created_at=T0,
        updated_at=T1,
        energy_wh=12_345,
        cost_cents=2052,
        starting_at=T0,
        ended_at=T1,
    )
    return replace(session, **changes)


@pytest.mark.parametrize(
    ("method", "changes", "expected"),
    [
        (
            Method.CREDIT_CARD,
            {
                "payment_status": PaymentStatus.CAPTURED,
                "authorized_amount": 5000,
                "captured_amount": 2052,
                "card_reference": "card_abcd1234",
            },
            {
                "total_charged": 2052,
                "released_amount": 2948,
                "refunded_total": 0,
                "payment_reference": "card_abcd1234",
                "waived": False,
            },
        ),
        (
            Method.PIX,
            {
                "payment_status": PaymentStatus.PARTIALLY_REFUNDED,
                "authorized_amount": 5000,
                "refunded_amount": 2948,
                "charge_id": "ch_1",
            },
            {
                "total_charged": 2052,
                "released_amount": 0,
                "refunded_total": 2948,
                "payment_reference": "ch_1",
                "waived": False,
            },
        ),
        (
            Method.VIP,
            {"payment_status": PaymentStatus.WAIVED},
            {"total_charged": 0, "released_amount": 0, "authorized_amount": 0, "waived": True},
        ),
    ],
)
def test_receipt_data_from_session(
    method: Method, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    operator = ReceiptSettings(operator_name="Op", operator_tax_id="1", operator_address="Rua")
    data = receipt_data_from_session(
        make_session(method, **changes), receipt_number=3, issued_at=T1, operator=operator
    )
    assert (data.station_id, data.connector_id, data.energy_wh) == ("EVSE-9", 2, 12_345)
    assert (data.started_at, data.stopped_at, data.cost) == (T0, T1, 2052)
    assert (data.operator_name, data.method) == ("Op", method.value)
    for key, value in expected.items():
        assert getattr(data, key) == value, key
    render_receipt(data)


def test_a_card_shows_its_last_digits_never_the_charge_id() -> None:
    operator = ReceiptSettings(operator_name="Op")
    for method in (Method.CREDIT_CARD, Method.GOOGLE_PAY):
        session = make_session(method, payment_status=PaymentStatus.CAPTURED, captured_amount=2052,
                               authorized_amount=5000, charge_id="ch_abc9876", card_last4="0010")
        html, text = render_receipt(receipt_data_from_session(
            session, receipt_number=1, issued_at=T1, operator=operator))
        assert "****0010" in html and "****0010" in text
        assert "9876" not in html + text
        unknown = replace(session, card_last4=None)
        html, text = render_receipt(receipt_data_from_session(
            unknown, receipt_number=1, issued_at=T1, operator=operator))
        assert "9876" not in html + text


# --- file mailer -------------------------------------------------------------------------------


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_receipt_message(message: EmailMessage, to: str, message_id: str) -> None:
    assert message["To"] == to
    assert message["From"] == "receipts@csms.example"
    assert message["Subject"] == "Recibo de recarga #17"
    assert message["Message-ID"] == message_id
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    assert "Total cobrado / Total charged: BRL 20.52" in plain.get_content()
    assert "&lt;b&gt;EVSE&lt;/b&gt;" in rich.get_content()


async def send_receipt(
    mailer: Any, to: str = "driver@example.com", key: str = "receipt-S1"
) -> None:
    html, text = render_receipt(card_receipt(station_id="<b>EVSE</b>"))
    await mailer.send(to=to, subject="Recibo de recarga #17", html=html, text=text, message_id=key)


async def test_file_mailer_writes_parseable_eml_idempotently(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mailer = FileMailer(outbox, "receipts@csms.example")
    await send_receipt(mailer)
    await send_receipt(mailer)  # same message id: same file, overwritten
    files = list(outbox.iterdir())
    assert files == [mailer.path_for("receipt-S1")]
    assert files[0].suffix == ".eml"
    message = parse(files[0].read_bytes())
    assert_receipt_message(message, "driver@example.com", "<receipt-S1@csms.example>")

    await send_receipt(mailer, key="<receipt-S2@other.example>")
    assert len(list(outbox.iterdir())) == 2
    assert parse(mailer.path_for("<receipt-S2@other.example>").read_bytes())["Message-ID"] == (
        "<receipt-S2@other.example>"
    )


async def test_file_mailer_disk_error_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(TransientMailError) as info:
        await send_receipt(FileMailer(blocker / "outbox"))
    assert info.value.transient is True


def test_make_message_id() -> None:
    assert make_message_id("receipt-S1", "Receipts <r@csms.example>") == "<receipt-S1@csms.example>"
    assert make_message_id("<a@b.c>", "r@csms.example") == "<a@b.c>"
    assert make_message_id("a b", "r@x.y") == "<a-b@x.y>"


def test_make_mailer_picks_backend(tmp_path: Path) -> None:
    assert isinstance(make_mailer(MailSettings(outbox_dir=str(tmp_path))), FileMailer)
    assert isinstance(make_mailer(MailSettings(backend="smtp")), SmtpMailer)


# --- SMTP mailer against a real aiosmtpd server ------------------------------------------------


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"csms", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535


@pytest.fixture
def smtp_server(smtp_inbox: StartSmtp) -> Callable[..., tuple[SmtpInbox, MailSettings]]:
    """Start SMTP servers; returns (inbox, MailSettings pointing at it)."""

    def start(rcpt_reply: str | None = None, **kwargs: Any) -> tuple[SmtpInbox, MailSettings]:
        inbox = smtp_inbox(rcpt_reply, **kwargs)
        return inbox, inbox.mail_settings()

    return start


async def test_smtp_mailer_delivers_message(smtp_server: Callable[..., Any]) -> None:
    handler, settings = smtp_server()
    await send_receipt(SmtpMailer(settings))
    [envelope] = handler.envelopes
    assert envelope.mail_from == "receipts@csms.example"
    assert envelope.rcpt_tos == ["driver@example.com"]
    assert_receipt_message(
        parse(envelope.original_content), "driver@example.com", "<receipt-S1@csms.example>"
    )


async def test_smtp_mailer_authenticates(smtp_server: Callable[..., Any]) -> None:
    handler, settings = smtp_server(authenticator=authenticator, auth_require_tls=False)
    good = settings.model_copy(update={"smtp_username": "csms", "smtp_password": "s3cret"})
    await send_receipt(SmtpMailer(good))
    assert len(handler.envelopes) == 1

    bad = settings.model_copy(update={"smtp_username": "csms", "smtp_password": "wrong"})
    with pytest.raises(PermanentMailError):  # 535 authentication failed
        await send_receipt(SmtpMailer(bad))
    assert len(handler.envelopes) == 1


async def test_smtp_recipient_refused_550_is_permanent(smtp_server: Callable[..., Any]) -> None:
    handler, settings = smtp_server(rcpt_reply="550 no such user")
    with pytest.raises(PermanentMailError) as info:
        await send_receipt(SmtpMailer(settings), to="nobody@example.com")
    assert info.value.transient is False
    assert "550" in str(info.value)
    assert handler.envelopes == []


async def test_smtp_recipient_deferred_451_is_transient(smtp_server: Callable[..., Any]) -> None:
    handler, settings = smtp_server(rcpt_reply="451 try again later")
    with pytest.raises(TransientMailError) as info:
        await send_receipt(SmtpMailer(settings))
    assert info.value.transient is True
    assert handler.envelopes == []


async def test_smtp_connection_refused_is_transient() -> None:
    settings = MailSettings(backend="smtp", smtp_host="127.0.0.1", smtp_port=free_port())
    with pytest.raises(TransientMailError):
        await send_receipt(SmtpMailer(settings))


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never sends the SMTP greeting."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_smtp_timeout_is_transient(silent_server: int) -> None:
    settings = MailSettings(
        backend="smtp", smtp_host="127.0.0.1", smtp_port=silent_server, smtp_timeout=0.2
    )
    with pytest.raises(MailError) as info:
        await send_receipt(SmtpMailer(settings))
    assert info.value.transient is True
