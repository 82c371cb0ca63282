"""Debian's nginx (installed by `make test`: scripts/ensure-nginx.sh) run with the project's
own configs under a prefix of the test's own, on ports of the test's own."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[2]
STACK_CONF = ROOT / "deploy" / "nginx-stack.conf"
COMPOSE_CONF = ROOT / "deploy" / "nginx.conf"
# the ports deploy/nginx-stack.conf is written for (deploy/Procfile)
STACK_PORTS = {"balancer": 8080, "node_a": 8081, "node_b": 8082}


def nginx_binary() -> str:
    """The nginx executable (Debian's is in /usr/sbin, often not on a user's PATH), or skip."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.skip("nginx is not installed: `make test` installs it as root "
                    "(scripts/ensure-nginx.sh; Debian: apt-get install nginx)")
    return found


def stack_conf(balancer: int, node_a: int, node_b: int) -> str:
    """deploy/nginx-stack.conf with the test's ports in place of the stack's."""
    text = STACK_CONF.read_text()
    for name, port in (("balancer", balancer), ("node_a", node_a), ("node_b", node_b)):
        old = f"127.0.0.1:{STACK_PORTS[name]}"
        assert old in text, f"{old} is no longer in {STACK_CONF}"
        text = text.replace(old, f"127.0.0.1:{port}")
    return text


def check(conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` of one config file."""
    prefix.mkdir(parents=True, exist_ok=True)
    return subprocess.run([nginx_binary(), "-t", "-p", str(prefix), "-c", str(conf),
                           "-e", "stderr"], capture_output=True, text=True, timeout=30)


@dataclass
class Balancer:
    """nginx with deploy/nginx-stack.conf in front of two nodes."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_balancer(directory: Path, node_a: int, node_b: int) -> Balancer:
    exe = nginx_binary()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(stack_conf(port, node_a, node_b))
    log = directory / "nginx.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([exe, "-p", str(directory), "-c", str(conf),
                                    "-e", "stderr", "-g", "daemon off;"],
                                   stdout=out, stderr=out)
    wait_listening(process, port, "nginx", timeout=10)
    return Balancer(port, process, log)
