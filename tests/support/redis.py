"""A redis-server of the test's own on a free port (or the one CSMS_TEST_REDIS_URL names)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_listening


@dataclass
class RedisServer:
    url: str
    port: int | None = None
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def restartable(self) -> bool:
        return self.port is not None

    def start(self) -> None:
        assert self.port is not None and self.directory is not None
        exe = shutil.which("redis-server")
        assert exe is not None
        self.process = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.process, self.port, "redis-server", timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of our own on a free port (or CSMS_TEST_REDIS_URL)."""
    url = os.environ.get("CSMS_TEST_REDIS_URL")
    if url:
        yield RedisServer(url)
        return
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: `make test` installs it "
                    "(apt-get install redis-server), or set CSMS_TEST_REDIS_URL")
    port = free_port()
    server = RedisServer(f"redis://127.0.0.1:{port}/0", port, tmp_path)
    server.start()
    yield server
    server.stop()
