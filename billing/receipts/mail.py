"""Mail port for receipts and its adapters: `.eml` files in an outbox, or SMTP (aiosmtplib).

`Mailer.send` is idempotent per `message_id` as far as the adapter allows: the file adapter
overwrites the same file; SMTP servers see the same Message-ID and can deduplicate. Failures are
`MailError`s whose `transient` flag tells a job whether a retry can help.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib

from billing.settings import MailSettings


class MailError(Exception):
    """Sending failed; `transient` is True when retrying later may succeed."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class TransientMailError(MailError):
    """Temporary failure (server down, timeout, 4xx reply, disk error): retry later."""

    transient = True


class PermanentMailError(MailError):
    """Permanent failure (5xx reply such as an unknown recipient): do not retry."""

    transient = False


class Mailer(Protocol):
    """Port: deliver one receipt e-mail."""

    async def send(self, *, to: str, subject: str, html: str, text: str, message_id: str) -> None:
        """Send a multipart/alternative message; raise MailError on failure."""
        ...


def _domain(from_address: str) -> str:
    domain = from_address.rpartition("@")[2].strip(" <>")
    return domain or "localhost"


def make_message_id(key: str, from_address: str) -> str:
    """A valid Message-ID `<key@domain>` (domain of `from_address`); kept if already `<..@..>`."""
    key = key.strip()
    if re.fullmatch(r"<[^<>\s@]+@[^<>\s@]+>", key):
        return key
    local = re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", "-", key.strip("<>")) or "receipt"
    return f"<{local}@{_domain(from_address)}>"


def build_message(
    *, from_address: str, to: str, subject: str, html: str, text: str, message_id: str
) -> EmailMessage:
    """A multipart/alternative message: text/plain first, then text/html."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_message_id(message_id, from_address)
    message["Date"] = format_datetime(datetime.now(UTC))
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _file_name(message_id: str) -> str:
    bare = message_id.strip().strip("<>")
    safe = re.sub(r"[^A-Za-z0-9._@-]", "_", bare).lstrip(".") or "message"
    if safe != bare:  # keep distinct ids distinct after sanitizing
        safe += "-" + hashlib.sha256(bare.encode()).hexdigest()[:12]
    return safe + ".eml"


class FileMailer:
    """Writes each message to `<outbox_dir>/<message id>.eml` (atomic; same id overwrites)."""

    def __init__(
        self, outbox_dir: str | os.PathLike[str], from_address: str = "receipts@localhost"
    ) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.from_address = from_address

    def path_for(self, message_id: str) -> Path:
        """Where the message with this id is (or will be) written."""
        return self.outbox_dir / _file_name(make_message_id(message_id, self.from_address))

    async def send(self, *, to: str, subject: str, html: str, text: str, message_id: str) -> None:
        message = build_message(
            from_address=self.from_address,
            to=to,
            subject=subject,
            html=html,
            text=text,
            message_id=message_id,
        )
        await asyncio.to_thread(self._write, self.path_for(message_id), bytes(message))

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TransientMailError(f"cannot write {path}: {exc}") from exc


def _classify(code: int, message: str) -> MailError:
    if 400 <= code < 500:
        return TransientMailError(f"SMTP {code}: {message}")
    return PermanentMailError(f"SMTP {code}: {message}")


class SmtpMailer:
    """Sends through an SMTP server with aiosmtplib (optional STARTTLS and AUTH)."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    async def send(self, *, to: str, subject: str, html: str, text: str, message_id: str) -> None:
        s = self.settings
        message = build_message(
            from_address=s.from_address,
            to=to,
            subject=subject,
            html=html,
            text=text,
            message_id=message_id,
        )
        try:
            errors, _ = await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            if codes and all(code >= 500 for code in codes):
                raise PermanentMailError(f"recipient refused: {detail}") from exc
            raise TransientMailError(f"recipient refused: {detail}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message) from exc
        except aiosmtplib.SMTPNotSupported as exc:  # e.g. STARTTLS or AUTH not offered
            raise PermanentMailError(f"SMTP server does not support: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientMailError(f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}") from exc
        if errors:  # some recipients refused (only possible with several)
            code, reply = next(iter(errors.values()))
            raise _classify(code, reply)


def make_mailer(settings: MailSettings) -> Mailer:
    """The adapter chosen by `mail.backend`."""
    if settings.backend == "smtp":
        return SmtpMailer(settings)
    return FileMailer(settings.outbox_dir, settings.from_address)
