"""A real SMTP server (aiosmtpd on a free port) and what it received."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from billing.settings import MailSettings
from tests.support.net import free_port
from tests.support.wait import eventually


@dataclass
class SmtpInbox:
    """aiosmtpd handler keeping every envelope and parsed message.

    `rcpt_reply` answers every RCPT with that fixed reply (say "550 no such user");
    `tempfail` refuses the next N recipients with 451, then accepts.
    """

    port: int = 0
    rcpt_reply: str | None = None
    tempfail: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        if self.tempfail > 0:
            self.tempfail -= 1
            return "451 4.3.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.original_content,
                                                policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int = 1, timeout: float = 15) -> list[EmailMessage]:
        await eventually(lambda: len(self.messages) >= count, timeout=timeout)
        return self.messages

    def mail_settings(self, **overrides: Any) -> MailSettings:
        """Mail settings that send to this server."""
        values: dict[str, Any] = {"backend": "smtp", "smtp_host": "127.0.0.1",
                                  "smtp_port": self.port,
                                  "from_address": "receipts@csms.example", "smtp_timeout": 5}
        values.update(overrides)
        return MailSettings.model_validate(values)


StartSmtp = Callable[..., SmtpInbox]


@pytest.fixture
def smtp_inbox() -> Iterator[StartSmtp]:
    """Start SMTP servers: `smtp_inbox(rcpt_reply=None, **controller_kwargs) -> SmtpInbox`."""
    controllers: list[Controller] = []

    def start(rcpt_reply: str | None = None, **kwargs: Any) -> SmtpInbox:
        inbox = SmtpInbox(port=free_port(), rcpt_reply=rcpt_reply)
        controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **kwargs)
        controller.start()
        controllers.append(controller)
        return inbox

    yield start
    for controller in controllers:
        controller.stop()
