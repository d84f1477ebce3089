"""``faust -A app.main worker`` as a child process: how ``omninode dev``, the tests and the
benchmarks run workers, with the deployment's settings in its environment.

Each serves the HTTP API (docs/api.md) on its own port: ``web_port``, else
``OMNINODE_WEB_PORT`` from its environment, else a free port of 127.0.0.1 picked when it
starts, so several workers run side by side on one machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.infra.settings import Settings


def worker_environment(
    settings: Settings, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "OMNINODE_PROFILE": settings.profile,
        "OMNINODE_RSS_PATH": ":".join(settings.rss_paths),
        "OMNINODE_APP_ID": settings.app_id,
    }
    if settings.partitions:
        env["OMNINODE_PARTITIONS"] = str(settings.partitions)
    if settings.handler_modules:
        env["OMNINODE_HANDLERS"] = ",".join(settings.handler_modules)
    env.update(extra or {})
    return env


@dataclass
class WorkerProcess:
    """``faust -A app.main worker`` as a child process with its own data dir and log file."""

    settings: Settings
    data_dir: Path
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    web_port: int | None = None

    @property
    def api_url(self) -> str:
        """The worker's HTTP API (after :meth:`start` picked its port)."""
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.web_port is None:
            configured = self.env.get("OMNINODE_WEB_PORT")
            self.web_port = int(configured) if configured else free_port()
        command = [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "app.main",
            "--datadir",
            str(self.data_dir),
            "worker",
            "--loglevel",
            "info",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=worker_environment(
                self.settings, {**self.env, "OMNINODE_WEB_PORT": str(self.web_port)}
            ),
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the worker logs that it is ready (partitions assigned, tables recovered)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}; see {self.log_path}"
                )
            if b"[^Worker]: Ready" in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout_s:.0f}s; see {self.log_path}")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (a clean shutdown: Faust commits and leaves the group), then SIGKILL."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
