"""Settings sections billing owns: `[billing]` (with its tariff and gateways), `[tasks]`,
`[mail]` and `[receipts]`."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Protocol

from pydantic import Field, field_validator

from billing.money import PriceAmount
from csms.settings import OcppSettings, Section, StoreSettings


class TasksSettings(Section):
    broker: Literal["inmemory", "redis"] = "inmemory"
    redis_url: str = "redis://localhost:6379/0"
    queue_name: str = "csms:money-jobs"
    # Waits between attempts of a money job (seconds, +-20% jitter); the last one repeats.
    retry_delays: list[float] = Field(default_factory=lambda: [10, 30, 120, 600, 3600])
    max_attempts: int = Field(10, ge=1)  # then the job is FAILED and waits for an operator
    lease: float = Field(60, gt=0)  # a delivered or running job is presumed lost after this
    sweep_interval: float = Field(1, gt=0)  # how often the outbox sweeper looks for due jobs

    @field_validator("retry_delays")
    @classmethod
    def _delays(cls, value: list[float]) -> list[float]:
        if not value or any(d < 0 for d in value):
            raise ValueError("must be a non-empty list of non-negative seconds")
        return value


class TariffSettings(Section):
    price_per_kwh: PriceAmount = Decimal("1.50")
    fixed_connection_fee: PriceAmount = Decimal("2.00")


class PagarmeSettings(Section):
    base_url: str = "https://api.pagar.me/core/v5"
    secret_key: str = ""
    webhook_user: str = ""
    webhook_password: str = ""
    timeout: float = Field(15, gt=0)
    # Text on the card statement: Pagar.me allows 13 characters (PSP) or 22 (gateway accounts).
    statement_descriptor: str = Field("EV CHARGING", min_length=1, max_length=22)
    # Apple Pay merchant identifier ("merchant.com.example"): Pagar.me wants it with every Apple
    # Pay token (it is not part of the token). Empty: Apple Pay payments are refused.
    apple_pay_merchant_identifier: str = ""


class CcvSettings(Section):
    """CCV Payment API (https://developer.myccv.eu/documentation/payment_api/)."""

    base_url: str = "https://api.psp.ccv.eu"
    api_key: str = ""  # HTTP Basic user, empty password
    # Default managementSystemId of a terminal payment (a terminal may carry its own).
    management_system_id: str = ""
    timeout: float = Field(15, gt=0)
    # CCV's webhooks carry no credentials: each request's webhookUrl carries this secret
    # (`?key=`), and POST /webhooks/ccv refuses a hint without it. Empty: hints are refused
    # (401) and only the reconciliation sweep learns outcomes.
    webhook_secret: str = ""
    # Seconds a terminal session waits for its card's outcome (approved or declined). Past it
    # the session ends FAILED and the connector takes the next driver; the authorisation is
    # still read by the sweep, and a card approved after that is reversed at once.
    card_timeout: float = Field(300, gt=0)
    # Seconds a webhook hint that overtook our own request's answer waits for that answer
    # (CCV's reference of it) before it is refused 503; the sweep reads it in any case.
    hint_wait: float = Field(5, gt=0)

    @property
    def configured(self) -> bool:
        """Terminal payments are on: `[billing.ccv]` has an API key."""
        return bool(self.api_key)


class BillingSettings(Section):
    gateway: Literal["sandbox", "pagarme"] = "sandbox"
    currency: str = Field("BRL", pattern=r"^[A-Z]{3}$")
    tariff: TariffSettings = TariffSettings()
    pagarme: PagarmeSettings = PagarmeSettings()
    ccv: CcvSettings = CcvSettings()
    # SQLite file where the sandbox gateway keeps its charges (survives restarts).
    sandbox_path: str = "data/sandbox_gateway.db"
    # Hold placed when a driver with a saved card starts at the station (RFID), in cents.
    default_hold: int = Field(5000, gt=0)
    # The largest pre-authorization a driver app may ask for, in cents (POST /charge/start).
    max_hold: int = Field(100_000, gt=0)
    pix_expires_in: int = Field(900, gt=0)  # seconds a PIX QR code stays payable
    gateway_attempts: int = Field(3, ge=1)  # tries of a gateway call inside one request
    reconcile_interval: float = Field(30, gt=0)  # seconds between reconciliation sweeps
    # A VOID whose job gave up (the gateway kept failing) is sent again by the sweep after
    # reconcile_interval seconds, doubling per attempt up to this many seconds.
    release_retry_max: float = Field(3600, gt=0)
    # A stop not yet followed by the station's StopTransaction is sent again after this many
    # seconds, doubling per attempt up to stop_retry_max_interval (and at once on reconnect).
    stop_retry_interval: float = Field(30, gt=0)
    stop_retry_max_interval: float = Field(600, gt=0)
    # The most a connector delivers (kW): energy implying more over the elapsed time is not
    # captured (the session waits in REVIEW) and does not count for the budget guard.
    max_power_kw: Decimal = Field(Decimal(350), gt=0)
    # Seconds added to our own receive window (first to last frame of a transaction) before
    # it bounds the station's clock: frames a station queued or the network delayed.
    receive_time_slack: float = Field(600, ge=0)
    # Hours a session waits in REVIEW for an operator. Then the reconciliation sweep settles
    # it by itself (the plausible part: `billing.settlement.Settlement.review_expired`), well
    # before the gateway lets the card hold lapse (Pagar.me: 5 days for API authorisations,
    # 4 for some Visa ones).
    review_deadline_hours: float = Field(48, gt=0, le=96)


class MailSettings(Section):
    backend: Literal["file", "smtp"] = "file"
    outbox_dir: str = "data/outbox"
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    from_address: str = "receipts@localhost"
    smtp_username: str = ""  # empty: no SMTP AUTH
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: float = Field(15, gt=0)


class ReceiptSettings(Section):
    """Issuer details printed on charging receipts."""

    operator_name: str = "CSMS Charging"
    operator_tax_id: str = ""  # CNPJ
    operator_address: str = ""


class BillingConfig(Protocol):
    """What billing reads of the whole configuration (the root settings satisfy it)."""

    @property
    def ocpp(self) -> OcppSettings: ...

    @property
    def store(self) -> StoreSettings: ...

    @property
    def tasks(self) -> TasksSettings: ...

    @property
    def billing(self) -> BillingSettings: ...

    @property
    def mail(self) -> MailSettings: ...

    @property
    def receipts(self) -> ReceiptSettings: ...
