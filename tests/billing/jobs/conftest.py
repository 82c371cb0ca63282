"""Real peers for the money-job tests: redis-server, an SMTP server, the fake Pagar.me, and
`csms worker` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.billing.flows import Env
from tests.conftest import make_settings
from tests.support.mongo import BACKENDS, backend_environ
from tests.support.pagarme import SECRET_KEY, start_fake_pagarme
from tests.support.redis import RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.support.smtp import SmtpInbox, StartSmtp
from web.app import create_app

ROOT = Path(__file__).resolve().parents[3]


# --- the CSMS under test -------------------------------------------------------------------------

FAST_JOBS = {
    "CSMS_TASKS__RETRY_DELAYS": "[0.2, 0.4, 0.6]",
    "CSMS_TASKS__MAX_ATTEMPTS": "4",
    "CSMS_TASKS__LEASE": "2",
    "CSMS_TASKS__SWEEP_INTERVAL": "0.2",
    "CSMS_BILLING__RECONCILE_INTERVAL": "0.5",
    "CSMS_BILLING__GATEWAY_ATTEMPTS": "1",
}


@dataclass
class JobsEnv(Env):
    environ: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tmp_path: Path | None = None

    def start_worker(self) -> subprocess.Popen[bytes]:
        """`csms worker` in its own process, with the same settings as the server."""
        assert self.tmp_path is not None
        env = {**os.environ, **self.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.tmp_path / f"worker-{len(self.workers)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "--log-level", "INFO", "worker"],
            cwd=self.tmp_path, env=env, stdout=subprocess.PIPE, stderr=log)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert b"csms worker ready" in line, (self.tmp_path / "worker-0.log").read_text()
        self.workers.append(process)
        return process

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture
def inbox(smtp_inbox: StartSmtp) -> SmtpInbox:
    return smtp_inbox()


@pytest.fixture(params=BACKENDS)
async def jobs_env(request: pytest.FixtureRequest, tmp_path: Path, aiohttp_server: Any,
                   inbox: SmtpInbox) -> AsyncIterator[JobsEnv]:
    """The CSMS on the Pagar.me fake with SMTP mail and fast job retries, on each store
    backend. Tests marked `@pytest.mark.redis` get the redis broker (and start workers
    themselves)."""
    fake = await start_fake_pagarme(aiohttp_server)
    environ = {
        **FAST_JOBS,
        "CSMS_STORE__SQLITE_PATH": str(tmp_path / "csms.db"),
        "CSMS_BILLING__GATEWAY": "pagarme",
        "CSMS_BILLING__PAGARME__BASE_URL": fake.base_url,
        "CSMS_BILLING__PAGARME__SECRET_KEY": SECRET_KEY,
        "CSMS_BILLING__PAGARME__WEBHOOK_USER": "hook",
        "CSMS_BILLING__PAGARME__WEBHOOK_PASSWORD": "hookpw",
        "CSMS_MAIL__BACKEND": "smtp",
        "CSMS_MAIL__SMTP_HOST": "127.0.0.1",
        "CSMS_MAIL__SMTP_PORT": str(inbox.port),
        "CSMS_MAIL__SMTP_TIMEOUT": "3",
        "CSMS_RECEIPTS__OPERATOR_NAME": "Eletroposto Teste Ltda",
        "CSMS_RECEIPTS__OPERATOR_TAX_ID": "12.345.678/0001-90",
        **backend_environ(request, request.param),
    }
    if request.node.get_closest_marker("redis"):
        redis: RedisServer = request.getfixturevalue("redis_server")
        environ.update(CSMS_TASKS__BROKER="redis", CSMS_TASKS__REDIS_URL=redis.url,
                       CSMS_TASKS__QUEUE_NAME=f"csms-test-{uuid.uuid4().hex}")
    server: TestServer = await aiohttp_server(create_app(make_settings(tmp_path, **environ)))
    async with aiohttp.ClientSession() as http:
        env = JobsEnv(server, fake, http, environ=environ, tmp_path=tmp_path)
        try:
            yield env
        finally:
            env.stop_workers()
