"""The whole configuration: `config.toml` plus `CSMS_<SECTION>__<KEY>` environment overrides.

Each package owns its sections (`csms.settings`, `billing.settings`); this module composes them
with the HTTP ones (`[server]`, `[api]`). Loading validates every value; a bad one raises
`ConfigError` naming the key, which the CLI turns into a non-zero exit with that message.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from billing.settings import (
    BillingSettings,
    MailSettings,
    ReceiptSettings,
    TasksSettings,
)
from csms.settings import ConfigError, OcppSettings, Section, StoreSettings

__all__ = ["ConfigError", "Settings", "load_settings"]

ENV_PREFIX = "CSMS_"


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class ApiSettings(Section):
    operator_token: str = ""
    driver_keys: list[str] = []


class Settings(Section):
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
