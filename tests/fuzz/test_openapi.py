"""schemathesis over the app's own /api/openapi.json (issue 8 item 16): every operation,
a bounded number of generated requests each, against the live app on a real port. No
response may be a 5xx, and each must match the document: a status it lists explicitly, the
content type and the body schema it gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.conftest import make_settings
from tests.support.live import live_app
from web.app import create_app
from web.openapi import build_openapi
from web.settings import load_settings

EXAMPLES = 20


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    with live_app(make_settings(tmp, CSMS_OCPP__COMMAND_TIMEOUT="0.5")) as url:
        yield url


# The document GET /api/openapi.json serves, built the same way from an app with default
# settings (schemathesis needs it when the tests are collected, before any server runs);
# test_the_served_document_is_the_one_tested checks that the live one is the same.
DOCUMENT = build_openapi(create_app(load_settings(None, {})))
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_tested(base_url: str) -> None:
    assert requests.get(f"{base_url}/api/openapi.json", timeout=10).json() == DOCUMENT


@schemathesis.check
def documented_status(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """The status is one the operation lists, not only covered by `default` (a request with
    a method the path does not have is answered 405, as HTTP says, and not checked here)."""
    if case.method.upper() != case.operation.method.upper():
        return
    listed = {code for code in case.operation.responses.status_codes if code != "default"}
    assert str(response.status_code) in listed, \
        f"{case.operation.label}: {response.status_code} is not documented ({sorted(listed)})"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_document(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, timeout=10, checks=[
        not_a_server_error, documented_status, content_type_conformance,
        response_schema_conformance])
