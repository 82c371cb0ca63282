"""Charging receipts: rendering (HTML + plain text) and delivery through a mail port."""

from billing.receipts.mail import (
    FileMailer,
    Mailer,
    MailError,
    PermanentMailError,
    SmtpMailer,
    TransientMailError,
    build_message,
    make_mailer,
    make_message_id,
)
from billing.receipts.render import (
    ReceiptData,
    format_kwh,
    mask_cpf,
    mask_reference,
    receipt_data_from_session,
    render_receipt,
)

__all__ = [
    "FileMailer",
    "MailError",
    "Mailer",
    "PermanentMailError",
    "ReceiptData",
    "SmtpMailer",
    "TransientMailError",
    "build_message",
    "format_kwh",
    "make_mailer",
    "make_message_id",
    "mask_cpf",
    "mask_reference",
    "receipt_data_from_session",
    "render_receipt",
]
