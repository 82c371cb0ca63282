"""Real peers for the cluster tests: two `csms serve` processes (nodes A and B) with
`cluster.enabled`, a `csms worker`, a redis-server of the test's own, a fresh database on the
MongoDB wire server, and the fake Pagar.me the nodes and the worker call over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from tests.billing.flows import Env
from tests.support.csms_process import ROOT, CsmsProcess
from tests.support.fake_pagarme import FakePagarme
from tests.support.mongo import MongoDatabase
from tests.support.net import free_port
from tests.support.pagarme import SECRET_KEY, start_fake_pagarme
from tests.support.redis import RedisServer, redis_server  # noqa: F401  (a fixture)

COMMAND_TIMEOUT = 1.0  # seconds a node waits for a station's answer (the 504 cases)


@dataclass
class Cluster:
    a: CsmsProcess
    b: CsmsProcess
    fake: FakePagarme
    http: aiohttp.ClientSession
    environ: dict[str, str]
    directory: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, node: CsmsProcess) -> Env:
        """The driver's and operator's view through one node."""
        return Env(SimpleNamespace(host="127.0.0.1", port=node.port),  # type: ignore[arg-type]
                   self.fake, self.http)

    def start_worker(self) -> None:
        env = {**os.environ, **self.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.directory / f"worker-{len(self.workers)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "--log-level", "INFO", "worker"],
            cwd=self.directory, env=env, stdout=subprocess.PIPE, stderr=log)
        assert process.stdout is not None
        assert b"csms worker ready" in process.stdout.readline()
        self.workers.append(process)

    def stop(self) -> None:
        for node in (self.a, self.b):
            node.stop()
        for process in self.workers:
            process.terminate()
            process.wait(10)


def node(directory: Path, environ: dict[str, str], name: str) -> CsmsProcess:
    directory.mkdir()
    return CsmsProcess(directory, {**environ, "CSMS_CLUSTER__NODE_ID": name}, free_port())


@pytest.fixture
async def cluster(tmp_path: Path, aiohttp_server: Any, redis_server: RedisServer,  # noqa: F811
                  mongo_database: MongoDatabase) -> AsyncIterator[Cluster]:
    fake = await start_fake_pagarme(aiohttp_server)
    environ = {
        **mongo_database.env(),
        "CSMS_TASKS__BROKER": "redis", "CSMS_TASKS__REDIS_URL": redis_server.url,
        "CSMS_TASKS__QUEUE_NAME": f"csms-test-{uuid.uuid4().hex}",
        "CSMS_TASKS__SWEEP_INTERVAL": "0.2",
        "CSMS_CLUSTER__ENABLED": "true", "CSMS_CLUSTER__PRESENCE_TTL": "3",
        "CSMS_OCPP__COMMAND_TIMEOUT": str(COMMAND_TIMEOUT),
        "CSMS_BILLING__GATEWAY": "pagarme", "CSMS_BILLING__PAGARME__BASE_URL": fake.base_url,
        "CSMS_BILLING__PAGARME__SECRET_KEY": SECRET_KEY,
        "CSMS_BILLING__GATEWAY_ATTEMPTS": "1",
        "CSMS_BILLING__RECONCILE_INTERVAL": "0.5",
        "CSMS_MAIL__OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    a = node(tmp_path / "a", environ, "node-a")
    b = node(tmp_path / "b", environ, "node-b")
    async with aiohttp.ClientSession() as http:
        nodes = Cluster(a, b, fake, http, environ, tmp_path)
        try:
            await a.start()
            await b.start()
            nodes.start_worker()
            yield nodes
        finally:
            nodes.stop()
