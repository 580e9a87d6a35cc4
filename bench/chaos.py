#!/usr/bin/env python
"""Chaos: a real `xlsearch serve` and `xlsearch worker` under an ingestion workload while
faults are injected in rounds; after each round, everything acknowledged must be there, once,
with its latest acknowledged text, and the server's index must equal the database.

    python -m bench.chaos --seconds 600                  # SQLite, about ten minutes
    python -m bench.chaos --seconds 300 --postgres       # a throwaway PostgreSQL server
    python -m bench.chaos --database-url postgresql+psycopg://…   # an empty database of yours

Processes: `serve --no-worker` (the API, which also stores `wait: true` documents itself) and
one standalone `worker` (jobs), on one data folder, snapshots every 2 s, jobs taken over
after 5 s without a heartbeat. Client threads send, against a small corpus of short real
XQuAD texts (each id owns a few paragraphs; a replacement takes another paragraph, in any of
the 12 languages): `wait: true` documents, the same without `wait` (a job), JSONL uploads
(a job), deletes, and now and then the stored text again (a no-op).

Faults, one per round, in shuffled cycles: SIGKILL of the server, SIGKILL of the worker while
it holds a job, a truncated index snapshot (server killed, the `index-*.faiss` its manifest
names cut in half, server started again: it must rebuild), `xlsearch db backup` then, a few
seconds of writes later, a restore (every process stopped, the copy put back, started
again; half the time the backup is taken while documents are written and the server's newer
snapshots stay, which it must refuse, half the time it is a quiet backup of the whole data
folder, snapshots included, which must load), and contention (every client thread replaces
and deletes the same two ids). Killed processes are started again.

What counts as acknowledged: a 200 from `wait: true`, each item of a job that succeeded and
does not name it among its errors, a 204 (or 404) from a delete: the id must then be gone.
Requests are intervals: a request's effect lies between its start and its answer (a job's
between its submission and the poll that saw it finish); one without an answer may or may
not have happened. After a round the stored state of each id must be what some request could
have left last: one not followed by an acknowledged request that began after it ended (the
linearisable register). A restore rolls the history back: requests that ended before the
backup began stay, those that began after it ended are gone, those in between may be either
(jobs are held back while the backup runs, so none straddles it).

Checks per round (after the workload pauses, killed processes are back and every job is
finished): GET of every id against that history (lost, stale, deleted but back, a text never
sent); in the database, ids never sent and documents without exactly one chunk holding
their text (duplicated); `index.count` equal to the collection's `chunks`; and for up to 30
stored documents, a search for the exact text returning that document first with a score of
at least 0.92 (exact texts score 0.949-1.0 with the bundled model; a stale vector, the one of
another paragraph, at most 0.89).

Progress and anomalies go to stderr, the tables to stdout; the run folder (logs of every
process, `chaos-report.json` with each anomaly, the history of its id and the timeline of
faults) is kept when anything was found, or with `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from subprocess import Popen, TimeoutExpired, run
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import (
    DEFAULT_XQUAD,
    REPO_ROOT,
    XQUAD_LANGUAGES,
    code_version,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from search.store.database import connect
from search.store.tables import Chunk, Collection, Document, IndexSnapshot
from tests.processes import free_port, xlsearch_process

DOCUMENTS = "/v1/collections/default/documents"
JOBS = "/v1/collections/default/jobs"
FAULTS = ("kill-server", "kill-worker", "truncate-snapshot", "backup-restore", "contention")
# An exact text scores 0.949-1.0 against its own vector with this model (query and passage
# prompts differ), a vector of another XQuAD paragraph at most 0.89 (240 texts measured).
MIN_SCORE = 0.92
SEARCH_SAMPLE = 30
TEXT_CHARS = 300
SETTINGS_ENV = {
    "XLSEARCH_SNAPSHOT_INTERVAL_S": "2",
    "XLSEARCH_JOB_STALE_AFTER_S": "5",
    "XLSEARCH_CATCH_UP_INTERVAL_S": "0.25",
}


# -- the corpus --------------------------------------------------------------------------


def shorten(text: str, limit: int = TEXT_CHARS) -> str:
    """The text's first `limit` characters, cut at a space where the script has spaces:
    one chunk each, and quick to embed."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


class Corpus:
    """`ids` documents; id n owns paragraphs n, n + ids, n + 2·ids, … of XQuAD in every
    language, so that no two ids ever hold the same (or a translated) text."""

    def __init__(self, folder: Path, ids: int) -> None:
        xquad = load_xquad(folder)
        self.ids = [f"doc-{n:03d}" for n in range(ids)]
        self.texts: dict[str, list[tuple[int, str]]] = {doc_id: [] for doc_id in self.ids}
        for paragraph in range(xquad.n_paragraphs):
            owner = self.ids[paragraph % ids]
            for lang in XQUAD_LANGUAGES:
                self.texts[owner].append((paragraph, shorten(xquad.paragraphs[lang][paragraph])))
        self.paragraph = {text: p for owned in self.texts.values() for p, text in owned}

    def next_text(self, rng: random.Random, doc_id: str, current: str | None) -> str:
        """A text of another paragraph than `current`'s, in a random language; now and then
        `current` itself (same content again: a no-op)."""
        if current is not None and rng.random() < 0.1:
            return current
        now = self.paragraph.get(current or "")
        return rng.choice([text for p, text in self.texts[doc_id] if p != now])


# -- the history of acknowledged and attempted changes ------------------------------------


@dataclass(eq=False)
class Op:
    """One attempted change of one id: its text (None: delete) and when it may have
    happened. `end` None: it may still happen (no answer yet)."""

    doc_id: str
    text: str | None
    start: float
    source: str  # "wait", "delete", "job <id>", "job?" (no answer to the submission)
    end: float | None = None
    acked: bool = False
    dropped: bool = False  # rolled back by a restore

    @property
    def is_request(self) -> bool:
        """Done by the server during the request (as opposed to a job, done later)."""
        return not self.source.startswith("job")


class History:
    """Every id's attempted changes, thread-safe."""

    def __init__(self, ids: list[str]) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, list[Op]] = {doc_id: [] for doc_id in ids}
        self.sent: dict[str, set[str]] = {doc_id: set() for doc_id in ids}
        self.acked: Counter[str] = Counter()

    def begin(self, changes: list[tuple[str, str | None]], source: str) -> list[Op]:
        started = time.monotonic()
        ops = [Op(doc_id, text, started, source) for doc_id, text in changes]
        with self._lock:
            for op in ops:
                self._ops[op.doc_id].append(op)
                if op.text is not None:
                    self.sent[op.doc_id].add(op.text)
        return ops

    def latest_text(self, doc_id: str) -> str | None:
        with self._lock:
            return next((op.text for op in reversed(self._ops[doc_id])), None)

    def ack(self, ops: list[Op]) -> None:
        ended = time.monotonic()
        with self._lock:
            for op in ops:
                if not op.dropped:
                    op.end, op.acked = ended, True
                    self.acked["deletes" if op.text is None else "documents"] += 1

    def unsure(self, ops: list[Op], ended: float | None) -> None:
        """No answer (or a failure answer): the change may or may not have happened."""
        with self._lock:
            for op in ops:
                op.end = ended

    def drop(self, ops: list[Op]) -> None:
        """Never reached the server."""
        with self._lock:
            for op in ops:
                op.dropped = True
                self._ops[op.doc_id].remove(op)

    def close(self, ended: float, requests_only: bool) -> None:
        """Changes without an answer can no longer happen after `ended`: the server died
        (requests_only) or every job is finished."""
        with self._lock:
            for ops in self._ops.values():
                for op in ops:
                    if op.end is None and (op.is_request or not requests_only):
                        op.end = ended

    def rewind(self, backup_began: float, backup_ended: float) -> int:
        """The database went back to a backup taken between the two times; returns how many
        acknowledged changes that undid or made uncertain."""
        undone = 0
        with self._lock:
            for doc_id, ops in self._ops.items():
                kept = []
                for op in ops:
                    if op.end is not None and op.end < backup_began:
                        kept.append(op)
                        continue
                    undone += op.acked
                    if op.start > backup_ended:
                        op.dropped = True
                        continue
                    op.acked = False
                    op.end = backup_ended if op.end is None else min(op.end, backup_ended)
                    kept.append(op)
                self._ops[doc_id] = kept
        return undone

    def allowed(self, doc_id: str) -> set[str | None]:
        """What the id may hold now (None: absent): the value of any change not followed by
        an acknowledged change that began after it ended; absent too while none is
        acknowledged."""
        with self._lock:
            ops = self._ops[doc_id]
            acked = [op.start for op in ops if op.acked]
            floor = max(acked, default=float("-inf"))
            values = {op.text for op in ops if op.end is None or op.end >= floor}
            return values if acked else values | {None}

    def rebase(self, doc_id: str, value: str | None) -> None:
        """Forget the id's past: it holds `value` now (after a check, with nothing in flight)."""
        now = time.monotonic()
        with self._lock:
            self._ops[doc_id] = [Op(doc_id, value, now, "observed", now, acked=True)]

    def describe(self, doc_id: str, origin: float) -> list[dict[str, Any]]:
        """The id's history for the report: times relative to the run's start."""

        def at(moment: float | None) -> float | None:
            return None if moment is None else round(moment - origin, 3)

        with self._lock:
            return [
                {
                    "text": None if op.text is None else op.text[:60],
                    "source": op.source,
                    "start": at(op.start),
                    "end": at(op.end),
                    "acked": op.acked,
                }
                for op in self._ops[doc_id]
            ]


# -- processes ---------------------------------------------------------------------------


class Cluster:
    """The server and the worker on one data folder; kills, stops, starts, backups."""

    def __init__(
        self, workdir: Path, database_url: str | None, history: History, timeline: Timeline
    ) -> None:
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.env = dict(SETTINGS_ENV)
        if database_url:
            self.env["XLSEARCH_DATABASE_URL"] = database_url
        self._history = history
        self._timeline = timeline
        self._processes: dict[str, Popen[bytes]] = {}
        self._down: set[str] = set()  # roles stopped on purpose, until started again
        self.unexpected_exits: Counter[str] = Counter()

    @property
    def sqlite_file(self) -> Path:
        return self.data_dir / "xlsearch.db"

    def start(self, role: str) -> None:
        """Start the role (the server: until /ready answers)."""
        started = time.monotonic()
        serve = ("serve", "--port", str(self.port), "--no-worker")
        args = serve if role == "server" else ("worker",)
        self._processes[role] = xlsearch_process(self.data_dir, *args, **self.env)
        self._down.discard(role)
        if role == "server":
            self.wait_ready()
        self._timeline.add(f"{role} started ({time.monotonic() - started:.1f} s)")

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = self._processes["server"]
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see its log")
            try:
                if httpx.get(f"{self.base}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the server was not ready within {timeout_s:.0f} s")

    def kill(self, role: str) -> None:
        """SIGKILL; requests to a dead server can no longer take effect."""
        self._down.add(role)
        self._processes[role].kill()
        self._processes[role].wait()
        if role == "server":
            self._history.close(time.monotonic(), requests_only=True)
        self._timeline.add(f"SIGKILL {role}")

    def stop(self, role: str) -> None:
        """SIGTERM, as an operator stops a process (SIGKILL after 60 s)."""
        self._down.add(role)
        process = self._processes[role]
        process.terminate()
        try:
            process.wait(timeout=60)
        except TimeoutExpired:
            process.kill()
            process.wait()
            self._timeline.add(f"{role} ignored SIGTERM for 60 s: killed")
        if role == "server":
            self._history.close(time.monotonic(), requests_only=True)

    def revive(self) -> None:
        """Start again whatever died without being killed (that is counted: a bug)."""
        for role in ("server", "worker"):
            process = self._processes[role]
            if role not in self._down and process.poll() is not None:
                self.unexpected_exits[role] += 1
                self._timeline.add(f"{role} exited by itself ({process.returncode}): restarted")
                if role == "server":
                    self._history.close(time.monotonic(), requests_only=True)
                self.start(role)

    def snapshot_files(self) -> list[Path]:
        """The index files that the snapshot manifests name (the ones a start would load)."""
        files = []
        for manifest in self.data_dir.glob("indexes/*/manifest.json"):
            try:
                name = json.loads(manifest.read_text())["index_file"]
            except (OSError, ValueError, KeyError):
                continue
            if (manifest.parent / name).is_file():
                files.append(manifest.parent / name)
        return files

    def newest_log(self, role: str) -> str:
        kind = "serve" if role == "server" else "worker"
        logs = sorted(self.data_dir.parent.glob(f"{self.data_dir.name}-{kind}-*.log"))
        return logs[-1].read_text(errors="replace") if logs else ""

    def xlsearch(self, *args: str) -> None:
        """A one-off `xlsearch ARGS` on the same data and database (e.g. `db backup`)."""
        env = {"XLSEARCH_DATA_DIR": str(self.data_dir), **self.env}
        done = run([sys.executable, "-m", "search", *args], cwd=REPO_ROOT, capture_output=True,
                   text=True, timeout=300, env={**os.environ, **env}, check=False)
        if done.returncode:
            raise RuntimeError(f"xlsearch {' '.join(args)} failed: {done.stderr.strip()}")

    def copy_snapshots(self, folder: Path) -> list[str]:
        """Copy each collection's snapshot (manifest and the file it names) to `folder`;
        returns their snapshot ids."""
        folder.mkdir(parents=True, exist_ok=True)
        copied = []
        for manifest in self.data_dir.glob("indexes/*/manifest.json"):
            for _ in range(10):  # a snapshot being replaced meanwhile: read the new one
                try:
                    text = manifest.read_bytes()
                    source = manifest.parent / json.loads(text)["index_file"]
                    target = folder / manifest.parent.name
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target / source.name)
                    (target / manifest.name).write_bytes(text)
                    copied.append(json.loads(text)["snapshot_id"])
                    break
                except FileNotFoundError:
                    time.sleep(0.05)
        return copied

    def restore(self, backup: Path, snapshots: Path | None = None) -> None:
        """Put the backup back (processes stopped): the SQLite file without its WAL, or
        pg_restore into the database; and `snapshots` in place of the index folder."""
        if snapshots is not None:
            shutil.rmtree(self.data_dir / "indexes", ignore_errors=True)
            shutil.copytree(snapshots, self.data_dir / "indexes")
        if self.database_url is None:
            for suffix in ("-wal", "-shm"):
                self.sqlite_file.with_name(self.sqlite_file.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(backup, self.sqlite_file)
            return
        libpq = make_url(self.database_url).set(drivername="postgresql")
        done = run(["pg_restore", "--clean", "--if-exists", "--single-transaction",
                    f"--dbname={libpq.render_as_string(hide_password=False)}", str(backup)],
                   capture_output=True, text=True, timeout=300, check=False)
        if done.returncode:
            raise RuntimeError(f"pg_restore failed: {done.stderr.strip()}")

    def shutdown(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except TimeoutExpired:
                    process.kill()
                    process.wait()


@dataclass
class Timeline:
    """What happened when, for the report (seconds since the run began)."""

    origin: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)

    def add(self, event: str) -> None:
        line = f"t={time.monotonic() - self.origin:7.1f} s  {event}"
        self.events.append(line)
        log(event)


# -- the workload ------------------------------------------------------------------------


class Gate:
    """Lets client operations through until paused; `pause` waits for those in flight."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._paused = True
        self._active = 0

    @contextmanager
    def passage(self, stop: threading.Event) -> Iterator[bool]:
        with self._condition:
            while self._paused and not stop.is_set():
                self._condition.wait(0.2)
            if stop.is_set():
                yield False
                return
            self._active += 1
        try:
            yield True
        finally:
            with self._condition:
                self._active -= 1
                self._condition.notify_all()

    def pause(self) -> None:
        with self._condition:
            self._paused = True
            while self._active:
                self._condition.wait()

    def resume(self) -> None:
        with self._condition:
            self._paused = False
            self._condition.notify_all()


class Workload:
    """Client threads changing documents, and a thread that follows the jobs they submit."""

    def __init__(
        self, base: str, corpus: Corpus, history: History, clients: int, seed: int
    ) -> None:
        self._base = base
        self._corpus = corpus
        self._history = history
        self._seeds = [seed * 1000 + n for n in range(clients)]
        self._stop = threading.Event()
        self.gate = Gate()
        self.hot: list[str] | None = None  # contention: every thread on these ids
        self._jobs_held = False  # no new job submissions (a backup is running)
        self._submitting = 0
        self._lock = threading.Lock()
        self._pending: dict[str, list[Op]] = {}
        self.statuses: Counter[str] = Counter()
        self.failures: list[dict[str, Any]] = []
        self._threads = [
            threading.Thread(target=self._client, args=(s,), daemon=True) for s in self._seeds
        ] + [threading.Thread(target=self._follow_jobs, daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.gate.resume()
        for thread in self._threads:
            thread.join(timeout=150)

    @property
    def jobs_in_flight(self) -> int:
        with self._lock:
            return len(self._pending) + self._submitting

    def hold_jobs(self, held: bool) -> None:
        """While held, clients send documents with `wait: true` instead of as jobs; jobs
        being submitted when the hold begins are counted in `jobs_in_flight`."""
        with self._lock:
            self._jobs_held = held

    def _may_submit(self) -> bool:
        with self._lock:
            if self._jobs_held:
                return False
            self._submitting += 1
            return True

    def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        operations: dict[str, Callable[[httpx.Client, random.Random], None]] = {
            "wait": self._add_now,
            "delete": self._delete,
            "queued": self._add_queued,
            "upload": self._upload,
        }
        with httpx.Client(base_url=self._base, timeout=120) as client:
            while not self._stop.is_set():
                kind = rng.choices(list(operations), weights=(5, 2, 1, 1))[0]
                with self.gate.passage(self._stop) as allowed:
                    if not allowed:
                        continue
                    if kind in ("queued", "upload") and not self._may_submit():
                        kind = "wait"
                    operations[kind](client, rng)

    def _pick(self, rng: random.Random, most: int) -> list[str]:
        pool = self.hot or self._corpus.ids
        return rng.sample(pool, rng.randint(1, min(most, len(pool))))

    def _changes(self, rng: random.Random, most: int) -> list[tuple[str, str | None]]:
        return [
            (doc_id, self._corpus.next_text(rng, doc_id, self._history.latest_text(doc_id)))
            for doc_id in self._pick(rng, most)
        ]

    def _send(
        self, ops: list[Op], call: Callable[[], httpx.Response], rng: random.Random
    ) -> httpx.Response | None:
        """The answer, or None when there was none (the ops are then settled as such)."""
        try:
            return call()
        except httpx.ConnectError:  # the server is down: nothing was sent
            self._history.drop(ops)
            self.statuses["refused (server down)"] += 1
            time.sleep(rng.uniform(0.2, 0.5))
        except httpx.TransportError as error:
            self._history.unsure(ops, None)
            self.statuses[f"no answer ({type(error).__name__})"] += 1
        return None

    def _unexpected(self, response: httpx.Response, ops: list[Op], what: str) -> None:
        """An answer other than success: the change may have happened, until now."""
        self._history.unsure(ops, time.monotonic())
        self.statuses[f"{what} {response.status_code}"] += 1
        if len(self.failures) < 50:
            self.failures.append(
                {"request": what, "status": response.status_code, "body": response.text[:500],
                 "ids": [op.doc_id for op in ops]}
            )

    def _add_now(self, client: httpx.Client, rng: random.Random) -> None:
        changes = self._changes(rng, 3)
        ops = self._history.begin(changes, "wait")
        body = {"documents": [{"id": i, "text": t} for i, t in changes], "wait": True}
        response = self._send(ops, lambda: client.post(DOCUMENTS, json=body), rng)
        if response is None:
            return
        if response.status_code == 200:
            results = [result["id"] for result in response.json()["results"]
                       if result["status"] != "failed"]  # a refused document is not an ack
            if results == [doc_id for doc_id, _ in changes]:
                self.statuses["wait 200"] += 1
                self._history.ack(ops)
                return
        self._unexpected(response, ops, "wait")

    def _delete(self, client: httpx.Client, rng: random.Random) -> None:
        (doc_id,) = self._pick(rng, 1)
        ops = self._history.begin([(doc_id, None)], "delete")
        response = self._send(ops, lambda: client.delete(f"{DOCUMENTS}/{doc_id}"), rng)
        if response is None:
            return
        if response.status_code in (204, 404):  # 404: it was not there, and is not
            self.statuses[f"delete {response.status_code}"] += 1
            self._history.ack(ops)
        else:
            self._unexpected(response, ops, "delete")

    def _submit(
        self,
        rng: random.Random,
        what: str,
        send: Callable[[list[tuple[str, str | None]]], httpx.Response],
    ) -> None:
        """A job's submission (counted by `_may_submit`); its items are settled when the job
        is seen finished."""
        try:
            changes = self._changes(rng, 5)
            ops = self._history.begin(changes, "job?")
            response = self._send(ops, lambda: send(changes), rng)
            if response is None:
                return
            if response.status_code != 202:
                self._unexpected(response, ops, what)
                return
            job_id = response.json()["job_id"]
            for op in ops:
                op.source = f"job {job_id}"
            self.statuses[f"{what} 202"] += 1
            with self._lock:
                self._pending[job_id] = ops
        finally:
            with self._lock:
                self._submitting -= 1

    def _add_queued(self, client: httpx.Client, rng: random.Random) -> None:
        def send(changes: list[tuple[str, str | None]]) -> httpx.Response:
            body = {"documents": [{"id": i, "text": t} for i, t in changes]}
            return client.post(DOCUMENTS, json=body)

        self._submit(rng, "queued", send)

    def _upload(self, client: httpx.Client, rng: random.Random) -> None:
        def send(changes: list[tuple[str, str | None]]) -> httpx.Response:
            lines = "".join(
                json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in changes
            )
            name = f"chaos-{rng.getrandbits(32):08x}.jsonl"
            files = {"file": (name, lines.encode("utf-8"), "application/x-ndjson")}
            return client.post(JOBS, files=files)

        self._submit(rng, "upload", send)

    def _follow_jobs(self) -> None:
        with httpx.Client(base_url=self._base, timeout=30) as client:
            while not self._stop.wait(0.5):
                with self._lock:
                    pending = list(self._pending.items())
                for job_id, ops in pending:
                    try:
                        response = client.get(f"/v1/jobs/{job_id}")
                    except httpx.TransportError:
                        break  # the server is down; later
                    if response.status_code == 404:  # rolled back by a restore
                        self._settle(job_id, ops, None)
                    elif response.status_code == 200:
                        job = response.json()
                        if job["status"] in ("succeeded", "failed", "cancelled"):
                            self._settle(job_id, ops, job)

    def _settle(self, job_id: str, ops: list[Op], job: dict[str, Any] | None) -> None:
        """Acknowledge the items of a job that succeeded, except those it names in its errors
        (by id, or by `file.jsonl:LINE`); items of any other outcome may or may not be in."""
        failed: set[int] = set()
        if job is None or job["status"] != "succeeded":
            failed = set(range(len(ops)))
            self.statuses[f"job {job['status'] if job else 'gone'}"] += 1
        else:
            self.statuses["job succeeded"] += 1
            positions = {op.doc_id: n for n, op in enumerate(ops)}
            for error in job["errors"]:
                item = str(error.get("item", ""))
                line = item.rpartition(":")[2]
                if item in positions:
                    failed.add(positions[item])
                elif line.isdigit() and 0 < int(line) <= len(ops):
                    failed.add(int(line) - 1)
                else:
                    failed = set(range(len(ops)))
            if failed and len(self.failures) < 50:
                self.failures.append({"request": f"job {job_id}", "errors": job["errors"]})
        self._history.ack([op for n, op in enumerate(ops) if n not in failed])
        self._history.unsure([op for n, op in enumerate(ops) if n in failed], time.monotonic())
        with self._lock:
            self._pending.pop(job_id, None)


# -- checks ------------------------------------------------------------------------------


@dataclass
class RoundResult:
    fault: str
    seconds: float = 0.0
    acked: int = 0
    lost: int = 0
    stale: int = 0
    undeleted: int = 0
    never_sent: int = 0
    duplicated: int = 0
    index_mismatch: int = 0
    search_misses: int = 0
    stuck_jobs: int = 0
    anomalies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        counted = (self.lost, self.stale, self.undeleted, self.never_sent, self.duplicated,
                   self.index_mismatch, self.search_misses, self.stuck_jobs)
        return not any(counted)


class Checker:
    def __init__(
        self, cluster: Cluster, workload: Workload, history: History, corpus: Corpus,
        timeline: Timeline, rng: random.Random,
    ) -> None:
        self._cluster, self._workload, self._history = cluster, workload, history
        self._corpus, self._timeline, self._rng = corpus, timeline, rng
        self._url = cluster.database_url or f"sqlite:///{cluster.sqlite_file.resolve()}"

    def drain_jobs(self, timeout_s: float) -> bool:
        """Wait until every job this run knows of is finished and none is queued or running."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self._cluster.base, timeout=30) as client:
            while time.monotonic() < deadline:
                self._cluster.revive()
                try:
                    busy = any(
                        client.get("/v1/jobs", params={"status": s, "limit": 1}).json()["jobs"]
                        for s in ("queued", "running")
                    )
                except httpx.TransportError:
                    busy = True
                if not busy and not self._workload.jobs_in_flight:
                    return True
                time.sleep(0.5)
        return False

    def check(self, result: RoundResult) -> None:
        """Everything in the module docstring's list; anomalies are counted once (the id's
        history is then reset to what it holds)."""
        self._cluster.revive()
        started = time.monotonic()
        if not self.drain_jobs(timeout_s=240):
            result.stuck_jobs += 1
            self._anomaly(result, "stuck jobs", None, "jobs still queued or running after 240 s")
        self._history.close(time.monotonic(), requests_only=False)
        drained = time.monotonic()
        with httpx.Client(base_url=self._cluster.base, timeout=60) as client:
            stored = self._check_documents(client, result)
            self._check_database(stored, result)
            self._check_index(client, stored, result)
        log(f"jobs drained in {drained - started:.1f} s, checked in "
            f"{time.monotonic() - drained:.1f} s: {len(stored)} documents stored")

    def _anomaly(self, result: RoundResult, kind: str, doc_id: str | None, detail: str) -> None:
        entry: dict[str, Any] = {"kind": kind, "id": doc_id, "detail": detail}
        if doc_id is not None:
            entry["history"] = self._history.describe(doc_id, self._timeline.origin)
        result.anomalies.append(entry)
        log(f"ANOMALY {kind} {doc_id or ''}: {detail}")

    def _check_documents(self, client: httpx.Client, result: RoundResult) -> dict[str, str]:
        stored: dict[str, str] = {}
        for doc_id in self._corpus.ids:
            response = client.get(f"{DOCUMENTS}/{doc_id}")
            if response.status_code not in (200, 404):
                result.lost += 1
                self._anomaly(result, "unreadable", doc_id,
                              f"GET answered {response.status_code}: {response.text[:200]}")
                continue
            text = response.json()["text"] if response.status_code == 200 else None
            if text is not None:
                stored[doc_id] = text
            allowed = self._history.allowed(doc_id)
            if text not in allowed:
                if text is None:
                    result.lost += 1
                    kind = "lost"
                elif text not in self._history.sent[doc_id]:
                    result.never_sent += 1
                    kind = "text never sent"
                elif allowed == {None}:
                    result.undeleted += 1
                    kind = "deleted but present"
                else:
                    result.stale += 1
                    kind = "stale"
                held = "absent" if text is None else repr(text[:50])
                self._anomaly(result, kind, doc_id, f"holds {held}; allowed {len(allowed)} values")
            self._history.rebase(doc_id, text)
        return stored

    def _check_database(self, stored: dict[str, str], result: RoundResult) -> None:
        """Ids never sent, and documents without exactly one chunk with their text."""
        engine = connect(self._url)
        try:
            with engine.connect() as connection:
                chunks = (
                    select(Document.external_id, func.count(Chunk.id),
                           func.min(Chunk.text), func.max(Chunk.text))
                    .join(Collection, Document.collection_id == Collection.id)
                    .outerjoin(Chunk, Chunk.document_id == Document.id)
                    .where(Collection.name == "default")
                    .group_by(Document.id, Document.external_id)
                )
                rows = connection.execute(chunks).all()
        finally:
            engine.dispose()
        for external_id, count, low, high in rows:
            if external_id not in self._history.sent:
                result.never_sent += 1
                self._anomaly(result, "id never sent", None, f"{external_id!r} is stored")
            elif count != 1 or low != high or low != stored.get(external_id):
                result.duplicated += 1
                self._anomaly(result, "chunks", external_id,
                              f"{count} chunk(s); texts match the document: "
                              f"{low == high == stored.get(external_id)}")

    def recorded_snapshots(self, snapshot_ids: list[str]) -> int:
        """How many of these snapshots the database holds a record of (those it must load)."""
        if not snapshot_ids:
            return 0
        engine = connect(self._url)
        try:
            with engine.connect() as connection:
                query = select(func.count()).where(IndexSnapshot.id.in_(snapshot_ids))
                return int(connection.execute(query).scalar_one())
        finally:
            engine.dispose()

    def _check_index(
        self, client: httpx.Client, stored: dict[str, str], result: RoundResult
    ) -> None:
        """index.count == chunks (given the index a few seconds to catch up), and exact-text
        searches for a sample of stored documents."""
        deadline = time.monotonic() + 10
        while True:
            collection = client.get("/v1/collections/default").json()
            count, chunks = collection["index"].get("count"), collection["chunks"]
            if count == chunks or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if count != chunks:
            result.index_mismatch += 1
            self._anomaly(result, "index != database", None,
                          f"index.count {count}, chunks {chunks}, documents {len(stored)}")
        sample = self._rng.sample(sorted(stored), min(SEARCH_SAMPLE, len(stored)))
        for doc_id in sample:
            response = client.post("/v1/collections/default/search",
                                   json={"query": stored[doc_id], "k": 3})
            hits = response.json().get("results", []) if response.status_code == 200 else []
            top = hits[0] if hits else {"id": None, "score": 0.0}
            if top["id"] != doc_id or top["score"] < MIN_SCORE:
                result.search_misses += 1
                self._anomaly(result, "search", doc_id,
                              f"exact text found {top['id']!r} first, score {top['score']:.3f}")


# -- faults and rounds -------------------------------------------------------------------


class Chaos:
    def __init__(self, args: argparse.Namespace, workdir: Path, database_url: str | None) -> None:
        self.rng = random.Random(args.seed)
        self.args = args
        self.workdir = workdir
        self.timeline = Timeline()
        self.corpus = Corpus(args.xquad, args.ids)
        self.history = History(self.corpus.ids)
        self.cluster = Cluster(workdir, database_url, self.history, self.timeline)
        self.workload = Workload(self.cluster.base, self.corpus, self.history, args.clients,
                                 args.seed)
        self.checker = Checker(self.cluster, self.workload, self.history, self.corpus,
                               self.timeline, self.rng)
        self.faults: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.rolled_back = 0
        self._order: list[str] = []
        self._backups = 0

    def sleep(self, seconds: float) -> None:
        """Sleep while the workload runs, restarting processes that died by themselves."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.5))
            self.cluster.revive()

    def next_fault(self) -> str:
        if not self._order:
            self._order = list(FAULTS)
            self.rng.shuffle(self._order)
        return self._order.pop()

    def round(self, number: int) -> RoundResult:
        fault = self.next_fault()
        result = RoundResult(fault)
        started = time.monotonic()
        acked_before = sum(self.history.acked.values())
        self.timeline.add(f"round {number}: {fault}")
        self.workload.gate.resume()
        getattr(self, "_" + fault.replace("-", "_"))(self.args.round_seconds)
        self.faults[fault] += 1
        self.workload.gate.pause()
        self.checker.check(result)
        result.acked = sum(self.history.acked.values()) - acked_before
        result.seconds = time.monotonic() - started
        verdict = "survived" if result.survived else f"{len(result.anomalies)} anomalies"
        self.timeline.add(f"round {number} checked: {verdict}")
        return result

    def _kill_server(self, seconds: float) -> None:
        at = self.rng.uniform(3, seconds - 6)
        self.sleep(at)
        self.cluster.kill("server")
        time.sleep(self.rng.uniform(0.2, 2))
        self.cluster.start("server")
        self.sleep(max(0.0, seconds - at - 2))

    def _kill_worker(self, seconds: float) -> None:
        started = time.monotonic()
        self.sleep(2)
        while time.monotonic() - started < seconds - 4 and not self._job_running():
            self.sleep(0.3)
        self.cluster.kill("worker")
        self.sleep(self.rng.uniform(0.5, 3))
        self.cluster.start("worker")
        self.sleep(max(0.0, seconds - (time.monotonic() - started)))

    def _job_running(self) -> bool:
        try:
            jobs = httpx.get(f"{self.cluster.base}/v1/jobs",
                             params={"status": "running", "limit": 1}, timeout=10).json()
        except (httpx.TransportError, ValueError):
            return False
        return bool(jobs["jobs"])

    def _truncate_snapshot(self, seconds: float) -> None:
        started = time.monotonic()
        self.sleep(3)
        while not self.cluster.snapshot_files() and time.monotonic() - started < 20:
            self.sleep(0.5)
        self.cluster.kill("server")
        files = self.cluster.snapshot_files()
        if not files:
            self.notes["no snapshot to truncate"] += 1
        else:
            size = files[-1].stat().st_size
            with open(files[-1], "r+b") as handle:
                handle.truncate(size // 2)
            self.timeline.add(f"truncated {files[-1].name} from {size} to {size // 2} bytes")
        self.cluster.start("server")
        if files and "not using the snapshot" in self.cluster.newest_log("server"):
            self.notes["truncated snapshot refused, index rebuilt"] += 1
        elif files:
            self.notes["truncated snapshot NOT refused"] += 1
            self.timeline.add("the server did not log that it refused the truncated snapshot")
        self.sleep(max(0.0, seconds - (time.monotonic() - started)))

    def _backup_restore(self, seconds: float) -> None:
        started = time.monotonic()
        self.sleep(self.rng.uniform(2, 5))
        self.workload.hold_jobs(True)
        if not self.checker.drain_jobs(timeout_s=240):
            self.timeline.add("jobs did not finish within 240 s; backing up anyway")
        self._backups += 1
        suffix = "dump" if self.cluster.database_url else "db"
        backup = self.workdir / f"backup-{self._backups}.{suffix}"
        # Half the time, a quiet backup of the whole data folder: the snapshots (the server's
        # last, once it has written everything) copied, then the database, and both go back:
        # the snapshot must load. Otherwise a backup while writing, and the newer snapshots
        # stay (the server's own, written as it stops): they must be refused.
        older = self.workdir / f"indexes-{self._backups}" if self.rng.random() < 0.5 else None
        copied: list[str] = []
        if older is not None:
            self.workload.gate.pause()
            self.sleep(float(SETTINGS_ENV["XLSEARCH_SNAPSHOT_INTERVAL_S"]) + 1.5)
            copied = self.cluster.copy_snapshots(older)
        began = time.monotonic()
        self.cluster.xlsearch("db", "backup", str(backup))
        ended = time.monotonic()
        self.workload.hold_jobs(False)
        self.workload.gate.resume()
        how = "while writing" if older is None else f"quietly, with snapshots {', '.join(copied)}"
        self.timeline.add(f"backed up to {backup.name} in {ended - began:.1f} s {how}")
        self.sleep(max(4.0, seconds - (time.monotonic() - started)))
        self.workload.gate.pause()
        for role in ("worker", "server"):
            if older is None:
                self.cluster.stop(role)
            else:
                self.cluster.kill(role)
        self.cluster.restore(backup, older)
        self.rolled_back += self.history.rewind(began, ended)
        with_snapshots = "" if older is None else " with the snapshots of before it"
        self.timeline.add(f"stopped both, restored {backup.name}{with_snapshots}")
        recorded = self.checker.recorded_snapshots(copied)
        self.cluster.start("server")
        refused = "not using the snapshot" in self.cluster.newest_log("server")
        if older is None:
            self.notes[f"restores while writing: newer snapshot refused: {refused}"] += 1
        elif recorded == len(copied):
            self.notes[f"quiet restores: snapshot of the backup used: {not refused}"] += 1
        else:  # the server recorded a newer one before the backup read the database
            self.notes[f"quiet restores: snapshot not the backup's, refused: {refused}"] += 1
        self.cluster.start("worker")
        self.workload.gate.resume()
        self.sleep(3)

    def _contention(self, seconds: float) -> None:
        self.workload.hot = self.rng.sample(self.corpus.ids, 2)
        self.timeline.add(f"every client on {', '.join(self.workload.hot)}")
        try:
            self.sleep(seconds)
        finally:
            self.workload.hot = None


# -- the run -----------------------------------------------------------------------------


def summary_table(chaos: Chaos, results: list[RoundResult]) -> str:
    def total(name: str) -> int:
        return sum(getattr(r, name) for r in results)

    faults = ", ".join(f"{kind} {chaos.faults[kind]}" for kind in FAULTS)
    rows: list[tuple[str, object]] = [
        ("rounds survived", f"{sum(r.survived for r in results)} of {len(results)}"),
        ("faults injected", f"{sum(chaos.faults.values())} ({faults})"),
        ("documents acknowledged", chaos.history.acked["documents"]),
        ("deletes acknowledged", chaos.history.acked["deletes"]),
        ("acknowledged, then rolled back by a restore", chaos.rolled_back),
        ("lost", total("lost")),
        ("duplicated (not exactly one chunk with its text)", total("duplicated")),
        ("stale (an older text)", total("stale")),
        ("deleted but present", total("undeleted")),
        ("never sent but present", total("never_sent")),
        ("index/database mismatches (index.count != chunks)", total("index_mismatch")),
        (f"exact-text searches not first or < {MIN_SCORE}", total("search_misses")),
        ("rounds with jobs stuck", total("stuck_jobs")),
        ("processes that exited by themselves", sum(chaos.cluster.unexpected_exits.values())),
        ("answers other than success (4xx, 5xx)", sum(
            count for answer, count in chaos.workload.statuses.items()
            if answer.rpartition(" ")[2][:1] in ("4", "5") and answer != "delete 404"
        )),
    ]
    rows += [(note, count) for note, count in sorted(chaos.notes.items())]
    uploads = chaos.cluster.data_dir / "uploads"
    left = len(list(uploads.iterdir())) if uploads.is_dir() else 0
    rows.append(("upload folders left at the end (rolled-back jobs leave theirs)", left))
    return format_table(["", "value"], rows)


def rounds_table(results: list[RoundResult]) -> str:
    rows = [
        (n, r.fault, f"{r.seconds:.0f}", r.acked, "yes" if r.survived else "NO",
         "; ".join(sorted({a["kind"] for a in r.anomalies})))
        for n, r in enumerate(results, start=1)
    ]
    return format_table(["round", "fault", "s", "acks", "survived", "anomalies"], rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600,
                        help="Start no new round after this long (a round takes ~40-60 s).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--round-seconds", type=float, default=20,
                        help="Workload per round, with the fault somewhere in it.")
    parser.add_argument("--ids", type=int, default=40, help="Document ids in play.")
    parser.add_argument("--clients", type=int, default=3, help="Client threads.")
    parser.add_argument("--database-url", help="An empty PostgreSQL database (default: SQLite).")
    parser.add_argument("--postgres", action="store_true",
                        help="Start a throwaway PostgreSQL server, as the tests do.")
    parser.add_argument("--xquad", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--workdir", type=Path, help="Run folder (default: a new temporary one).")
    parser.add_argument("--keep", action="store_true", help="Keep the run folder.")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.round_seconds < 12:
        raise SystemExit("--round-seconds must be at least 12 (faults need room in a round)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="xlsearch-chaos-"))
    with ExitStack() as stack:
        database_url = args.database_url
        if args.postgres:
            from tests.postgres import postgres_server

            database_url = stack.enter_context(postgres_server()).create_database()
        chaos = Chaos(args, workdir, database_url)
        results: list[RoundResult] = []
        began = time.monotonic()
        try:
            chaos.cluster.start("server")
            chaos.cluster.start("worker")
            chaos.workload.start()
            number = 0
            while time.monotonic() - began < args.seconds:
                number += 1
                results.append(chaos.round(number))
        finally:
            chaos.workload.stop()
            chaos.cluster.shutdown()
        elapsed = time.monotonic() - began
    found = any(r.anomalies for r in results) or chaos.workload.failures
    report = {
        "timeline": chaos.timeline.events,
        "rounds": [asdict(r) for r in results],
        "statuses": dict(chaos.workload.statuses),
        "failures": chaos.workload.failures,
    }
    (workdir / "chaos-report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    database = "PostgreSQL" if database_url else "SQLite"
    print(f"Machine: {machine_description()}; {code_version()}")
    print(
        f"Method: {elapsed:.0f} s, seed {args.seed}, {database}; `serve --no-worker` + one "
        f"`worker`; {args.clients} client threads on {args.ids} ids (short XQuAD texts, 12 "
        f"languages); {args.round_seconds:.0f} s of workload per round with one fault; "
        + ", ".join(f"{k}={v}" for k, v in SETTINGS_ENV.items())
    )
    print()
    print(summary_table(chaos, results))
    print()
    print(rounds_table(results))
    print()
    print("Answers: " + ", ".join(f"{k} {v}" for k, v in sorted(chaos.workload.statuses.items())))
    if found or args.keep:
        log(f"run folder kept: {workdir} (chaos-report.json, process logs)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
