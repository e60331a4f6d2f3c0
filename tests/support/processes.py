"""Real OS processes for the durability tests: the simulated agencies
(``python -m legacy``), the gateway (``khaalga serve``) and delivery workers
(``khaalga worker``), each in its own process group so a test can SIGKILL it
(and anything it spawned) and start it again on the same state.

Every wait here is bounded, and blocking: call these from ``asyncio.to_thread``
when the test's event loop also serves something (an in-process gateway).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from connectors.config import BackendEndpoint
from gateway.settings import ROOT

READY = "simulators ready"
# Below Linux's ephemeral range (32768-60999): while the simulators are down,
# no outgoing connection can take one of their ports and block the restart.
_PORT_RANGE = (20000, 32000)


def free_port_block(count: int) -> int:
    """A base port P such that P .. P+count-1 are all free on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError(f"no block of {count} free ports")


class Process:
    """One child process in its own session (process group), output to a log file."""

    def __init__(self, name: str, command: list[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.command = command
        self.log = log
        self.env = dict(env)
        self.popen: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        # Spawning and the final stop exclude each other: a restart still under
        # way in a thread when a test gives up must not leave a process behind.
        self._lock = threading.Lock()
        self._closed = False

    def spawn(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name} was stopped for good")
            assert not self.running, f"{self.name} is already running"
            self._close_log()
            self._out = self.log.open("ab")
            self.popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up of any kind runs."""
        self._signal(signal.SIGKILL)
        self._reap(10)

    def stop(self, grace: float = 15.0, *, final: bool = False) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ``grace`` seconds;
        ``final``: and never spawn again."""
        with self._lock:
            self._closed = self._closed or final
            if self.running:
                self._signal(signal.SIGTERM)
                if not self._reap(grace):
                    self._signal(signal.SIGKILL)
                    self._reap(10)
            elif self.popen is not None:
                # The leader is gone; make sure nothing it spawned is left behind.
                self._signal(signal.SIGKILL)
            self._close_log()

    def _signal(self, sig: signal.Signals) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def _reap(self, timeout: float) -> bool:
        assert self.popen is not None
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _close_log(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, what: str) -> AssertionError:
        return AssertionError(f"{self.name}: {what}\n--- {self.log} ---\n{self.tail()}")


def khaalga(*arguments: str) -> list[str]:
    """The installed ``khaalga`` command (the venv's console script) with arguments."""
    script = Path(sys.executable).with_name("khaalga")
    if script.exists():
        return [str(script), *arguments]
    return [sys.executable, "-c", "from gateway.cli import main; main()", *arguments]


def child_env(**extra: str) -> dict[str, str]:
    """This environment minus any KHAALGA_* of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KHAALGA_")}
    env.update(extra)
    return env


@dataclass
class Simulators:
    """All 13 agencies in one ``python -m legacy`` process, restartable on the same state."""

    workdir: Path
    base_port: int
    review_seconds: float
    logs: Path
    faults_file: Path = field(init=False)
    process: Process = field(init=False)
    starts: int = 0

    def __post_init__(self) -> None:
        self.faults_file = self.logs / "simulator-faults.json"
        self.set_faults({})
        command = [
            sys.executable, "-m", "legacy", "--workdir", str(self.workdir),
            "--base-port", str(self.base_port), "--review-seconds", str(self.review_seconds),
            "--catalog", str(ROOT / "catalog"), "--faults", str(self.faults_file),
        ]  # fmt: skip
        self.process = Process("simulators", command, self.logs / "simulators.log", child_env())

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait for the ready line (``legacy/__main__.py`` prints it)."""
        self.process.spawn()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.tail(10_000).count(READY) >= self.starts:
                return
            if not self.process.running:
                raise self.process.fail("exited before it was ready")
            time.sleep(0.05)
        self.process.stop()
        raise self.process.fail(f"not ready within {timeout:g}s")

    def kill(self) -> None:
        self.process.kill()

    def stop(self, *, final: bool = False) -> None:
        """Stop gracefully (SIGTERM), so the agencies' records are closed cleanly."""
        self.process.stop(final=final)

    def set_faults(self, faults: Mapping[str, Mapping[str, Any]]) -> None:
        """Write the ``--faults`` file atomically; the process applies it within ~0.1 s."""
        temporary = self.faults_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(faults))
        os.replace(temporary, self.faults_file)


def backend_env(endpoints: Mapping[str, BackendEndpoint]) -> dict[str, str]:
    """``KHAALGA_BACKEND_<CODE>_*`` for every endpoint (see ``gateway/settings.py``)."""
    env: dict[str, str] = {}
    for code, endpoint in endpoints.items():
        prefix = f"KHAALGA_BACKEND_{code}_"
        env[prefix + "URL"] = endpoint.url
        if endpoint.api_key is not None:
            env[prefix + "API_KEY"] = endpoint.api_key
        if endpoint.access_token is not None:
            env[prefix + "ACCESS_TOKEN"] = endpoint.access_token
        if endpoint.signing_key is not None:
            env[prefix + "SIGNING_KEY"] = str(endpoint.signing_key)
    return env


def gateway_env(
    *,
    var_dir: Path,
    database_url: str,
    endpoints: Mapping[str, BackendEndpoint],
    port: int = 0,
    worker: bool = True,
    **extra: str,
) -> dict[str, str]:
    return child_env(
        KHAALGA_ENV="development",
        KHAALGA_HOST="127.0.0.1",
        KHAALGA_PORT=str(port),
        KHAALGA_VAR_DIR=str(var_dir),
        KHAALGA_DATABASE_URL=database_url,
        KHAALGA_WORKER="1" if worker else "0",
        KHAALGA_RATE_LIMITS="",  # 200 submissions and the polling must not be throttled
        KHAALGA_LOG_FORMAT="text",
        **backend_env(endpoints),
        **extra,
    )


class GatewayProcess:
    """``khaalga serve`` on a fixed loopback port, restartable on the same database."""

    def __init__(self, env: Mapping[str, str], logs: Path, name: str = "gateway") -> None:
        self.port = int(env["KHAALGA_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process(name, khaalga("serve"), logs / f"{name}.log", env)

    def start(self, timeout: float = 60.0) -> None:
        self.process.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.running:
                raise self.process.fail("exited before it answered /healthz")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.process.stop()
        raise self.process.fail(f"/healthz did not answer within {timeout:g}s")

    def kill(self) -> None:
        self.process.kill()

    def stop(self, *, final: bool = False) -> None:
        self.process.stop(final=final)


def worker_process(env: Mapping[str, str], logs: Path, name: str) -> Process:
    """A ``khaalga worker`` (started with ``spawn``; it has no readiness signal)."""
    return Process(name, khaalga("worker"), logs / f"{name}.log", env)
