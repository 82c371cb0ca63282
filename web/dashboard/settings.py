"""The `[dashboard]` section."""

from __future__ import annotations

from pydantic import Field

from csms.settings import Section


class DashboardSettings(Section):
    # Secret the sign-in cookie is encrypted and signed with. Empty: derived from
    # api.operator_token (so changing the token signs everyone out), or random per process
    # when that is empty too. Set it when several `csms serve` nodes share sign-ins.
    session_key: str = ""
    session_hours: int = Field(12, ge=1)  # a sign-in lasts this long
