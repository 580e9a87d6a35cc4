"""One `xlsearch worker` process per device: the multi-GPU mode that needs no shared model.

Each child is an ordinary worker pinned to one device; they share the job queue in the
database like workers on separate hosts, so a job's batches never cross processes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from search.language import default_language_processes
from search.settings import Settings

log = logging.getLogger(__name__)


def run_worker_per_device(settings: Settings, poll_interval_s: float = 0.5) -> int:
    """Start a worker per device of `settings.devices`, on the same database, and wait.

    SIGTERM or Ctrl-C stops them all; when one fails, the others are stopped too, so a
    supervisor (systemd, Kubernetes) restarts the set. Returns 0 or the first failure's status.
    """
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    shared = {
        "XLSEARCH_DATA_DIR": str(settings.data_dir),
        "XLSEARCH_DATABASE_URL": settings.resolved_database_url,
        "XLSEARCH_DEVICES": "[]",
    }
    on_cpu = all(device.startswith("cpu") for device in settings.devices)
    if settings.language_processes is None and not on_cpu:
        # Each GPU worker would take the host's default number of detection processes.
        share = max(1, default_language_processes() // len(settings.devices))
        shared["XLSEARCH_LANGUAGE_PROCESSES"] = str(share)
    stopping = False

    def stop_all(_signum: int = 0, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for _, child in children:
            if child.poll() is None:
                child.terminate()

    previous = signal.signal(signal.SIGTERM, stop_all)
    status = 0
    try:
        for device in settings.devices:
            if stopping:
                break
            env = {**os.environ, **shared, "XLSEARCH_DEVICE": device}
            child = subprocess.Popen([sys.executable, "-m", "search", "worker"], env=env)
            log.info("started a worker on %s (pid %d)", device, child.pid)
            children.append((device, child))
        while any(child.poll() is None for _, child in children):
            for device, child in children:
                code = child.poll()
                if code not in (None, 0) and not stopping:
                    log.error("the worker on %s exited with %d; stopping the others", device, code)
                    status = code if code > 0 else 1
                    stop_all()
            time.sleep(poll_interval_s)
    except KeyboardInterrupt:
        stop_all()
    finally:
        for _, child in children:
            child.wait()
        signal.signal(signal.SIGTERM, previous)
    return status
