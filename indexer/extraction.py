"""Text extraction from PDF, Office, EPUB and HTML files in worker processes.

Extraction runs beside the embedding (a GPU embeds a page faster than PDFium reads one) and
is isolated from the server: a file that crashes its reader (PDFium is C++) or takes longer
than `timeout_s` costs only its own item, reported with the reason; the worker process is
replaced and the rest goes on. Each process reads one file at a time; a thread per process
hands it files and waits for the answer.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import selectors
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from threading import Lock
from typing import IO, Any

Task = tuple[str, str, int, int]  # path, document id, max_document_bytes, max_file_bytes
HEADER = struct.Struct("<Q")  # a message is its length, then its pickle
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
READY = "ready"  # what a worker says once its imports are done, before its first task
START_TIMEOUT_S = 60.0  # how long a new interpreter may take to import the readers


def default_processes() -> int:
    """Half the cores (the other half embed, detect languages and serve), 1 to 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


class _Worker:
    """One extraction process (`python -m indexer.extraction`: a fresh interpreter, so that
    no caller needs a `__main__` guard and no threads are forked) and the pipes to it. It
    is in a session of its own, so that Ctrl-C in a terminal reaches only the caller, which
    stops it; it also ends by itself when its stdin closes."""

    def __init__(self) -> None:
        # This package first, so that a `PYTHONPATH` holding another `indexer` cannot win.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "indexer.extraction"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
            start_new_session=True,
        )
        # The task's time starts once the worker is ready, not while Python starts.
        try:
            ready = _receive(self._answers(), time.monotonic() + START_TIMEOUT_S)
        except (TimeoutError, EOFError, OSError, pickle.UnpicklingError) as exc:
            self.stop()
            raise OSError(f"an extraction process did not start ({type(exc).__name__})") from exc
        if ready != READY:
            self.stop()
            raise OSError("an extraction process did not start (it answered something else)")

    def _answers(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    def run(self, task: Task, timeout_s: float) -> tuple[str, Any]:
        """("done", result), or ("timeout" | "crashed", None) after which it is gone."""
        assert self.process.stdin is not None
        try:
            _send(self.process.stdin, task)
            return "done", _receive(self._answers(), time.monotonic() + timeout_s)
        except TimeoutError:
            self.stop()
            return "timeout", None
        except (EOFError, OSError, pickle.UnpicklingError):
            self.stop()
            return "crashed", None

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Kill the process (if it still runs), reap it and close its pipes."""
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in the kernel: leave it
            self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a broken pipe's unflushed bytes
                    pipe.close()


def _send(pipe: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(HEADER.pack(len(data)) + data)
    pipe.flush()


def _receive(fd: int, deadline: float) -> Any:
    """One message from `fd`; TimeoutError after `deadline`, EOFError if the pipe closed."""
    header = _read_exactly(fd, HEADER.size, deadline)
    return pickle.loads(_read_exactly(fd, HEADER.unpack(header)[0], deadline))


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    """`size` bytes from `fd` (a selector, not `select.select`, which fails for a
    descriptor numbered 1024 or more, as a busy server's are)."""
    data = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError
            piece = os.read(fd, min(size - len(data), 1 << 20))
            if not piece:
                raise EOFError
            data += piece
    return bytes(data)


def _serve() -> None:
    """A worker process: answer each task read from stdin on the original stdout; anything
    a library prints goes to stderr instead, so it cannot corrupt the answers."""
    from indexer.formats import preload
    from indexer.readers import extract_task

    preload()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    tasks = sys.stdin.buffer
    _send(answers, READY)
    while True:
        try:
            header = tasks.read(HEADER.size)
            if len(header) < HEADER.size:
                return
            task = pickle.loads(tasks.read(HEADER.unpack(header)[0]))
        except (EOFError, OSError):
            return
        _send(answers, extract_task(task))


class ExtractionPool:
    """Extracts files (`indexer.readers.extract_task`) in `processes` worker processes,
    started when first needed; `failed(task, reason)` is the result of a task whose process
    crashed or timed out."""

    def __init__(
        self, failed: Callable[[Task, str], Any], processes: int, timeout_s: float
    ) -> None:
        self._failed = failed
        self._timeout_s = timeout_s
        self._threads = ThreadPoolExecutor(processes, thread_name_prefix="xlsearch-extract")
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for _ in range(processes):
            self._idle.put(None)  # a worker not started yet
        self._workers: list[_Worker] = []
        self._lock = Lock()  # guards `_workers` and `_closed`
        self._closed = False
        self.processes = processes

    def submit(self, task: Task) -> Future[Any]:
        return self._threads.submit(self._extract, task)

    def _extract(self, task: Task) -> Any:
        """The task's result; whatever goes wrong on the way is the task's failure, never
        the whole job's."""
        worker = self._idle.get()
        try:
            if worker is not None and not worker.alive():
                worker.stop()  # it died while idle: close its pipes
                worker = None
            if worker is None:
                worker = self._start()
            outcome, result = worker.run(task, self._timeout_s)
        except Exception as exc:  # noqa: BLE001 - no process (EMFILE, ENOMEM), a bug
            return self._failed(task, f"it could not be handed to a reader ({exc})"[:300])
        finally:
            self._idle.put(worker if worker is not None and worker.alive() else None)
        if outcome == "timeout":
            return self._failed(
                task,
                f"reading it took longer than {self._timeout_s:g} s "
                "(XLSEARCH_EXTRACT_TIMEOUT_S); the file may be damaged, or split it",
            )
        if outcome == "crashed":
            return self._failed(task, "its reader crashed on it; the file may be damaged")
        return result

    def _start(self) -> _Worker:
        """A new worker process, unless the pool is closing (then OSError)."""
        with self._lock:
            if self._closed:
                raise OSError("the extraction was stopped")
        worker = _Worker()  # outside the lock: `close` must not wait for a start
        with self._lock:
            if not self._closed:
                self._workers.append(worker)
                return worker
        worker.stop()
        raise OSError("the extraction was stopped")

    def close(self) -> None:
        """Stop the processes, then the threads: a file being read fails as crashed, tasks
        not started are dropped, and no thread can start a process afterwards."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        self._threads.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.stop()
        self._threads.shutdown(wait=True)

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


if __name__ == "__main__":
    _serve()
