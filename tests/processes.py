"""Helpers that run xlsearch as real processes: servers on free loopback ports, workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def xlsearch_process(
    data_dir: Path, *args: str, python: str = sys.executable, cwd: Path = REPO, **env: str
) -> subprocess.Popen[bytes]:
    """Start `xlsearch ARGS…` (with `python`, in `cwd`) on `data_dir`; output goes to a log
    file next to it."""
    environment = {**os.environ, "XLSEARCH_DATA_DIR": str(data_dir), **env}
    log = open(data_dir.parent / f"{data_dir.name}-{args[0]}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [python, "-m", "search", *args], env=environment, cwd=cwd, stdout=log, stderr=log
    )


@contextmanager
def running_server(
    data_dir: Path, *args: str, python: str = sys.executable, cwd: Path = REPO, **env: str
) -> Iterator[str]:
    """A live `xlsearch serve` on a free port; yields its base URL once /ready answers 200."""
    port = free_port()
    process = xlsearch_process(
        data_dir, "serve", "--port", str(port), *args, python=python, cwd=cwd, **env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not become ready")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)
