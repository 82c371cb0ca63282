"""The production stack (docker-compose.yml, Dockerfile), checked statically: no container
engine can pull images here, so the file is validated, not run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from web.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {"CSMS_API__OPERATOR_TOKEN": "op-token", "CSMS_API__DRIVER_KEYS": '["app-key"]'}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (`make test` installs Debian's)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return subprocess.run([exe, "-f", str(COMPOSE), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_compose_file_validates() -> None:
    result = compose("config", "-q", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_operator_token() -> None:
    result = compose("config", "-q", env={})
    assert result.returncode != 0
    assert "operator token" in result.stderr


def _resolved(environment: dict[str, Any]) -> dict[str, str]:
    """${VAR:-default} -> default, ${VAR:?message} -> the test secret."""
    out: dict[str, str] = {}
    for key, value in environment.items():
        text = str(value)
        match = re.fullmatch(r"\$\{(\w+):([-?])(.*)\}", text)
        if match:
            text = match.group(3) if match.group(2) == "-" else SECRETS[match.group(1)]
        out[key] = text
    return out


def test_stack_topology_and_settings() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert services["mongo"]["image"] == "mongo:7" and services["redis"]["image"] == "redis:7"
    assert all("healthcheck" in service for service in services.values())
    assert set(spec["volumes"]) == {"mongo-data", "redis-data", "csms-data"}
    assert services["serve"]["command"][:2] == ["csms", "serve"]
    assert services["serve-2"]["command"] == services["serve"]["command"]  # a second node
    assert services["worker"]["command"][:2] == ["csms", "worker"]
    for name in ("serve", "serve-2", "worker"):
        environ = _resolved(services[name]["environment"])
        settings = load_settings(None, environ)  # every CSMS_* key exists and parses
        assert settings.store.backend == "mongodb"
        assert settings.store.mongodb_url == "mongodb://mongo:27017"
        assert settings.tasks.broker == "redis"
        assert settings.cluster.enabled
        assert settings.api.operator_token == "op-token"
    # only the balancer publishes a port, and it balances over both nodes
    assert [n for n, service in services.items() if "ports" in service] == ["balancer"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["balancer"]["volumes"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server serve:8080" in nginx and "server serve-2:8080" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx


def test_dockerfile_runs_the_console_script() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^CMD \["csms", "serve"', text, re.M)
    assert "HEALTHCHECK" in text and "USER csms" in text
