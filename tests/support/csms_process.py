"""`csms serve` as a real process that a test can SIGKILL and start again on the same data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CsmsProcess:
    directory: Path  # working directory: its data (SQLite, mail) and logs
    environ: dict[str, str]
    port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: list[str] = field(default_factory=list)  # where each kill happened

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.environ, "PYTHONPATH": str(ROOT),
               "CSMS_SERVER__PORT": str(self.port), "CSMS_SERVER__HOST": "127.0.0.1"}
        with open(self.directory / f"serve-{self.starts}.log", "wb") as log:
            self.starts += 1
            self.process = subprocess.Popen(
                [sys.executable, "-m", "web.cli", "--log-level", "INFO", "serve"],
                cwd=self.directory, env=env, stdout=subprocess.PIPE, stderr=log)
        return self.process

    async def start(self, timeout: float = 20) -> bool:
        """Start `csms serve` and wait for its "listening" line (read in a thread: the test's
        loop keeps serving the fake gateway the server calls while it starts up). False when
        it was killed before it listened (a kill armed at a step its start-up reaches)."""
        process = self.spawn()
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout)
        if not line and self.kills and \
                await asyncio.to_thread(process.wait, 10) == -signal.SIGKILL:
            return False
        assert b"csms listening" in line, (line, process.poll(), self.kills, self.log())
        return True

    def kill(self, where: str) -> None:
        """SIGKILL, at once (safe to call from a callback of the test's own loop)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills.append(where)

    def pause(self) -> None:
        """SIGSTOP: the process stalls (a long pause) with its sockets open."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    async def wait_dead(self) -> None:
        assert self.process is not None
        await asyncio.to_thread(self.process.wait, 10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.directory.glob("serve-*.log")))
