"""The environment source of the settings: `CSMS_<SECTION>__<KEY>[__<KEY>...]` variables.

pydantic-settings' own `EnvSettingsSource` with three house rules: it reads the mapping it is
given (tests pass a dict instead of `os.environ`); only names with a `__` count, and a section
nobody owns is refused like any unknown key; a value that is not JSON stays a string, so the
model names the key and shows the value instead of a bare JSON error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource

from csms.settings import ConfigError

DELIMITER = "__"


class Environment(EnvSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        prefix = str(settings_cls.model_config.get("env_prefix", ""))
        self.env_vars = _overrides(environ, prefix)
        self._sections = {name[len(prefix):].split(DELIMITER)[0] for name in self.env_vars}

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value  # validation names the key and shows the value

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for section in self._sections - set(self.settings_cls.model_fields):
            data[section] = {}  # refused by the model as an unknown configuration key
        return data


def _overrides(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The `PREFIX<SECTION>__<KEY>` variables, names lower-cased (keys are case-insensitive)."""
    found = {}
    for name, value in environ.items():
        if not name.startswith(prefix) or DELIMITER not in name:
            continue
        if not all(name[len(prefix):].split(DELIMITER)):
            raise ConfigError(f"{name}: malformed configuration variable name")
        found[name.lower()] = value
    return found
