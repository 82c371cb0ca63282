"""Settings: `config.toml` plus `CSMS_<SECTION>__<KEY>` environment overrides.

Loading validates every value; a bad one raises `ConfigError` naming the key, which the CLI
turns into a non-zero exit with that message.
"""

from __future__ import annotations

import json
import os
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "CSMS_"


class ConfigError(Exception):
    """A configuration value is missing, malformed or out of range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class OcppSettings(_Section):
    allow_unknown_stations: bool = True
    accept_unknown_id_tags: bool = True
    heartbeat_interval: int = Field(300, ge=1)
    remote_start_timeout: float = Field(60, gt=0)
    command_timeout: float = Field(30, gt=0)
    message_log_size: int = Field(500, ge=0)
    require_subprotocol: bool = False


class StoreSettings(_Section):
    backend: Literal["sqlite", "mongodb"] = "sqlite"
    sqlite_path: str = "data/csms.db"
    mongodb_url: str = "mongodb://localhost:27017"
    mongodb_database: str = "csms"


class TasksSettings(_Section):
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


class TariffSettings(_Section):
    price_per_kwh: Decimal = Decimal("1.50")
    fixed_connection_fee: Decimal = Decimal("2.00")

    @field_validator("price_per_kwh", "fixed_connection_fee", mode="before")
    @classmethod
    def _decimal(cls, value: Any) -> Decimal:
        if isinstance(value, float):
            value = repr(value)
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {value!r}") from exc
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"must be a non-negative amount: {value!r}")
        return amount


class PagarmeSettings(_Section):
    base_url: str = "https://api.pagar.me/core/v5"
    secret_key: str = ""
    webhook_user: str = ""
    webhook_password: str = ""
    timeout: float = Field(15, gt=0)
    # Text on the card statement: Pagar.me allows 13 characters (PSP) or 22 (gateway accounts).
    statement_descriptor: str = Field("EV CHARGING", min_length=1, max_length=22)


class BillingSettings(_Section):
    gateway: Literal["sandbox", "pagarme"] = "sandbox"
    currency: str = Field("BRL", pattern=r"^[A-Z]{3}$")
    tariff: TariffSettings = TariffSettings()
    pagarme: PagarmeSettings = PagarmeSettings()
    # SQLite file where the sandbox gateway keeps its charges (survives restarts).
    sandbox_path: str = "data/sandbox_gateway.db"
    # Hold placed when a driver with a saved card starts at the station (RFID), in cents.
    default_hold: int = Field(5000, gt=0)
    pix_expires_in: int = Field(900, gt=0)  # seconds a PIX QR code stays payable
    gateway_attempts: int = Field(3, ge=1)  # tries of a gateway call inside one request
    reconcile_interval: float = Field(30, gt=0)  # seconds between reconciliation sweeps


class MailSettings(_Section):
    backend: Literal["file", "smtp"] = "file"
    outbox_dir: str = "data/outbox"
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    from_address: str = "receipts@localhost"
    smtp_username: str = ""  # empty: no SMTP AUTH
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: float = Field(15, gt=0)


class ReceiptSettings(_Section):
    """Issuer details printed on charging receipts."""

    operator_name: str = "CSMS Charging"
    operator_tax_id: str = ""  # CNPJ
    operator_address: str = ""


class ApiSettings(_Section):
    operator_token: str = ""
    driver_keys: list[str] = []


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    ocpp: OcppSettings = OcppSettings()
    store: StoreSettings = StoreSettings()
    tasks: TasksSettings = TasksSettings()
    billing: BillingSettings = BillingSettings()
    mail: MailSettings = MailSettings()
    receipts: ReceiptSettings = ReceiptSettings()
    api: ApiSettings = ApiSettings()


def _env_value(raw: str) -> Any:
    """Environment values are strings; lists may be given as JSON (`["a","b"]`) or `a,b`."""
    stripped = raw.strip()
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"{name}: malformed configuration variable name")
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path[:-1])} is not a table")
            node = child
        value: Any = _env_value(raw)
        if path == ["api", "driver_keys"] and isinstance(value, str):
            value = [key.strip() for key in value.split(",") if key.strip()]
        node[path[-1]] = value


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown configuration key")
        else:
            lines.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read the TOML file (if any), apply environment overrides and validate."""
    data: dict[str, Any] = {}
    if path is not None:
        config_path = Path(path)
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {config_path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
    _apply_env(data, dict(os.environ if environ is None else environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
