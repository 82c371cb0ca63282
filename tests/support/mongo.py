"""A MongoDB for the tests: `CSMS_TEST_MONGODB_URL` when set, else an `nx-27017` of our own.

nx-27017 (a test dependency) speaks the MongoDB wire protocol over SQLite files. One server runs
per test session (so per xdist worker), in a temp dir on a free port; every test gets a fresh
database, dropped afterwards. Where nx-27017 differs from MongoDB, see
tests/csms/store/test_nx_divergences.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.support.net import free_port, wait_listening

URL_VARIABLE = "CSMS_TEST_MONGODB_URL"


@dataclass
class MongoServer:
    """A MongoDB wire server: a real one (`process` None) or an nx-27017 we run ourselves."""

    url: str
    port: int | None = None
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def is_nx(self) -> bool:
        return self.port is not None

    def start(self) -> None:
        """Start (or restart, on the same port and files) our nx-27017."""
        assert self.port is not None and self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "nx-27017.pid").unlink(missing_ok=True)  # left by a kill -9
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from nx_27017.nx_27017 import main; main()",
             "--data-dir", str(self.directory), "--host", "127.0.0.1", "-p", str(self.port),
             "--pid-file", str(self.directory / "nx-27017.pid"),
             "--log-file", str(self.directory / "nx-27017.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.process, self.port, "nx-27017")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
            self.process = None

    def drop(self, database: str) -> None:
        with MongoClient(self.url, serverSelectionTimeoutMS=5000) as client:
            client.drop_database(database)


@dataclass(frozen=True)
class MongoDatabase:
    """Where a test's store lives: the server's URL and a database name of its own."""

    server: MongoServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url

    def env(self) -> dict[str, str]:
        """The `CSMS_*` settings that put the app under test on this database."""
        return {"CSMS_STORE__BACKEND": "mongodb", "CSMS_STORE__MONGODB_URL": self.url,
                "CSMS_STORE__MONGODB_DATABASE": self.name}


def start_nx(directory: Path) -> MongoServer:
    port = free_port()
    server = MongoServer(f"mongodb://127.0.0.1:{port}", port=port, directory=directory)
    server.start()
    return server


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """One MongoDB wire server for the session (each xdist worker has its own session)."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield MongoServer(url)
        return
    server = start_nx(tmp_path_factory.mktemp("nx-27017"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mongo_database(mongo_server: MongoServer) -> Iterator[MongoDatabase]:
    """A fresh, empty database for one test; dropped afterwards."""
    database = MongoDatabase(mongo_server, f"t{uuid.uuid4().hex[:16]}")
    yield database
    if mongo_server.is_nx and mongo_server.process is None:
        return  # a test stopped our server and did not restart it; its files go with tmp
    try:
        database.server.drop(database.name)
    except Exception:  # a test that broke the server must not fail the next one's teardown
        pass


BACKENDS = ["sqlite", "mongodb"]


def backend_environ(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """The `CSMS_*` settings for the store `backend` ("sqlite": the default, nothing to add;
    "mongodb": a fresh database on the session's MongoDB wire server)."""
    if backend == "sqlite":
        return {}
    database: MongoDatabase = request.getfixturevalue("mongo_database")
    return database.env()
