"""The balancer configs under deploy/, checked by Debian's nginx itself (`nginx -t`); skipped
with a reason only where nginx cannot be installed (`make test` installs it as root)."""

from __future__ import annotations

from pathlib import Path

from tests.support.nginx import COMPOSE_CONF, STACK_CONF, check


def test_the_stack_config_is_valid_nginx(tmp_path: Path) -> None:
    result = check(STACK_CONF, tmp_path / "prefix")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_compose_config_is_valid_nginx_with_its_upstreams_stubbed(tmp_path: Path) -> None:
    """The compose file's upstreams (`serve`, `serve-2`) only resolve inside compose's
    network: the same file with loopback addresses in their place."""
    text = COMPOSE_CONF.read_text()
    for name in ("serve:8080", "serve-2:8080"):
        assert f"server {name} " in text
    stubbed = text.replace("server serve:8080 ", "server 127.0.0.1:18081 ") \
        .replace("server serve-2:8080 ", "server 127.0.0.1:18082 ")
    conf = tmp_path / "nginx.conf"
    conf.write_text(stubbed)
    result = check(conf, tmp_path / "prefix")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
