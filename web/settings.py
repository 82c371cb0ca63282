"""The whole configuration: `config.toml` plus `CSMS_<SECTION>__<KEY>` environment overrides.

Each package owns its sections (`csms.settings`, `billing.settings`); this module composes them
with the HTTP ones (`[server]`, `[api]`) into one pydantic-settings object. Precedence: the
environment, then the TOML file, then the defaults. Loading validates every value; a bad one
raises `ConfigError` naming the key, which the CLI turns into a non-zero exit with that message.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from billing.settings import (
    BillingSettings,
    MailSettings,
    ReceiptSettings,
    TasksSettings,
)
from csms.settings import ClusterSettings, ConfigError, OcppSettings, Section, StoreSettings
from web.dashboard.settings import DashboardSettings
from web.settings_env import Environment

__all__ = ["ConfigError", "Settings", "load_settings"]

ENV_PREFIX = "CSMS_"


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # "production" refuses to start with an open configuration (web.posture lists what counts)
    mode: Literal["development", "production"] = "development"
    # How gateways reach our webhooks ("https://csms.example.com"): CCV is told, per request,
    # to post its hints to <public_url>/webhooks/ccv
    public_url: str = Field("", pattern=r"^(https?://[^\s?#]+)?$")
    # TLS (security profiles 2 and 3): HTTPS and wss:// on the same port; PEM files
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""  # CA that signs station certificates (profile 3)
    # Slow clients (slowloris): seconds a connection may take to send a request's headers or
    # sit idle between requests, and seconds to send a body; the largest body, in bytes.
    idle_timeout: float = Field(30, gt=0)
    body_timeout: float = Field(30, gt=0)
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    # Run on uvloop (`pip install 'csms[uvloop]'`). Measured in round five (docs/performance.md):
    # the same closed-loop ratios to ocpp-rpc as asyncio's loop, and a connect storm (10,000
    # stations) ~25% slower, so off by default.
    uvloop: bool = False

    @field_validator("uvloop")
    @classmethod
    def _uvloop_installed(cls, value: bool) -> bool:
        if value and importlib.util.find_spec("uvloop") is None:
            raise ValueError("uvloop is not installed (pip install 'csms[uvloop]')")
        return value


class ApiSettings(Section):
    operator_token: str = ""
    driver_keys: list[str] = []
    # keys the stations' kiosk software (or the terminal integration) sends in X-Api-Key to
    # /terminal/*; empty: open (development only)
    terminal_keys: list[str] = []

    @field_validator("driver_keys", "terminal_keys", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """`CSMS_API__DRIVER_KEYS=a,b` (the JSON form `["a","b"]` arrives already decoded)."""
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


# What `load_settings` is reading: (TOML file or None, environment). Outside a `load_settings`
# call, `Settings()` reads the process environment and no file.
_LOADING: ContextVar[tuple[Path | None, Mapping[str, str]] | None] = ContextVar(
    "csms_settings_loading", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid")

    server: ServerSettings = ServerSettings()
    ocpp: OcppSettings = OcppSettings()
    store: StoreSettings = StoreSettings()
    tasks: TasksSettings = TasksSettings()
    billing: BillingSettings = BillingSettings()
    mail: MailSettings = MailSettings()
    receipts: ReceiptSettings = ReceiptSettings()
    api: ApiSettings = ApiSettings()
    dashboard: DashboardSettings = DashboardSettings()
    cluster: ClusterSettings = ClusterSettings()

    @model_validator(mode="after")
    def _cluster_engines(self) -> Settings:
        """Nodes share stations, sessions and jobs: only on engines every node reaches."""
        if self.cluster.enabled:
            missing = []
            if self.store.backend != "mongodb":
                missing.append('store.backend = "mongodb"')
            if self.tasks.broker != "redis":
                missing.append('tasks.broker = "redis"')
            if missing:
                raise ValueError("cluster.enabled = true needs " + " and ".join(missing))
        return self

    @property
    def cluster_redis_url(self) -> str:
        return self.cluster.redis_url or self.tasks.redis_url

    @model_validator(mode="after")
    def _tls_for_the_profile(self) -> Settings:
        """Profiles 2 and 3 need TLS; 3 needs the CA that signs station certificates."""
        server, profile = self.server, self.ocpp.security_profile
        if bool(server.tls_cert_file) != bool(server.tls_key_file):
            raise ValueError("server.tls_cert_file and server.tls_key_file go together")
        if profile >= 2 and not server.tls_cert_file:
            raise ValueError(f"ocpp.security_profile = {profile} needs server.tls_cert_file "
                             "and server.tls_key_file")
        if profile == 3 and not server.tls_client_ca_file:
            raise ValueError("ocpp.security_profile = 3 needs server.tls_client_ca_file")
        if server.tls_client_ca_file and not server.tls_cert_file:
            raise ValueError("server.tls_client_ca_file needs server.tls_cert_file")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the TOML file; no .env file, no secrets dir."""
        path, environ = _LOADING.get() or (None, os.environ)
        return (init_settings, Environment(settings_cls, environ),
                TomlConfigSettingsSource(settings_cls, toml_file=path))


# Keys whose values never appear in a message: tokens, passwords, secret and API keys, URLs
# (they may carry credentials).
_SECRET = re.compile(r"token|password|secret|key|url", re.IGNORECASE)


def _shown(loc: tuple[Any, ...], value: Any) -> str:
    """What an error may say about the value it refused: never a secret, never a section."""
    if any(_SECRET.search(str(part)) for part in loc):
        return " (value not shown: secret)"
    if isinstance(value, dict | list):
        return ""
    return f" (got {value!r})"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if not key:  # a rule across sections (it names its keys itself)
            lines.append(str(item["msg"]).removeprefix("Value error, "))
        elif item["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown configuration key")
        else:
            lines.append(f"{key}: {item['msg']}{_shown(item['loc'], item.get('input'))}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (if any), apply environment overrides and validate.

    `environ` replaces `os.environ` when given (tests pass a dict).
    """
    config_path = None if path is None else Path(path)
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}")
    token = _LOADING.set((config_path, os.environ if environ is None else environ))
    try:
        return Settings()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    except (SettingsError, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    finally:
        _LOADING.reset(token)
