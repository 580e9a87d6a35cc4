#!/usr/bin/env python
"""The GPU path: the product's ingest path against the bare forward pass, query latency, and
FAISS IVF on the GPU against the CPU.

The model is a randomly initialised Qwen3 with a real Qwen3-Embedding configuration
(`--shape qwen3-4b`: 36 layers, hidden 2560; random weights cost the same compute as trained
ones) made on the fly, or a real model folder (`--model`). It is loaded by the product's own
code (`Engine.open`), in bf16 (fp16 where bf16 is missing) on a GPU. The random model's
tokenizer is trained on the sample documents with 4,000 entries, so its tokens hold fewer
characters than Qwen's (151k entries): per token, language detection and token counting
cost less than with the real tokenizer, which flatters the ingest path; `--model` with the
real model gives the figure to trust.

For each chunk length (256, 2k, 8k and 32k tokens by default) the same texts, each exactly one
chunk long, go through:
- the bare forward pass: the product's batches (`plan`), tokenised and on the device before
  the clock starts, then the model alone, one synchronisation at the end;
- the ingest path: `ingest_stream` into a fresh collection (language detection, chunking,
  token counting, embedding, SQLite writes), with the overlap the settings choose.
The table gives tokens/s and chunks/s of both, their ratio (median over `--repeats`,
alternating which goes first) and the peak GPU memory. Then query latency (p50/p99 of whole
searches and of their embedding stage, one at a time) and FAISS: IVF-Flat at the engine's
nlist on `--faiss-vectors` clustered vectors, built and searched on the GPU through
`VectorIndex` (trained there, kept on the CPU for snapshots), then the same index searched on
the CPU, so recall is equal by construction and the speed-up is per nprobe.

Without a GPU the same code runs on the CPU; `--shape tiny` with short lengths is the smoke
run the tests use:

    python -m bench.gpu                                   # on a GPU: Qwen3-Embedding-4B's shape
    python -m bench.gpu --model /models/Qwen3-Embedding-4B
    python -m bench.gpu --shape tiny --lengths 32,128 --tokens 2048 --faiss-vectors 20000 \\
        --faiss-dim 64

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np

from bench.common import REPO_ROOT, code_version, format_table, log, machine_description
from bench.ivf import gaussian_mixture, median_latency, recall
from indexer.pipeline import Ingestor, ingest_stream
from search.collections import collection_spec
from search.embedders.sentence_transformers import SentenceTransformerEmbedder
from search.engine import Engine
from search.schemas import DocumentIn, SearchRequest
from search.settings import Settings
from search.vector_index import (
    POINTS_PER_CENTROID,
    VectorIndex,
    gpu_count,
    plan_index,
)
from tests.random_models import SHAPES, build_random_qwen3

K = 10
SEED = 20261129
T = TypeVar("T")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a sentence-transformers model folder (default: random)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-4b")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--lengths", default="256,2048,8192,32768", help="chunk lengths, tokens")
    parser.add_argument("--tokens", type=int, default=131072, help="tokens per length and pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--faiss-vectors", type=int, default=1_000_000, help="0: skip FAISS")
    parser.add_argument("--faiss-dim", type=int, default=1024)
    parser.add_argument("--faiss-queries", type=int, default=1000)
    parser.add_argument("--work-dir", type=Path, help="where the model and database go")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


# -- timing ------------------------------------------------------------------------------


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib(reset: bool = False) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return torch.cuda.max_memory_allocated() / 2**30


def timed(call: Callable[[], T]) -> tuple[float, T]:
    """Seconds `call` took, GPU work included, and what it returned."""
    synchronize()
    started = time.perf_counter()
    result = call()
    synchronize()
    return time.perf_counter() - started, result


# -- texts -------------------------------------------------------------------------------


def sample_documents() -> list[dict[str, str]]:
    """The repository's own multilingual sample documents (12 languages)."""
    lines = (REPO_ROOT / "data" / "sample.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def sample_texts() -> list[str]:
    return [document["text"] for document in sample_documents()]


def texts_of_length(embedder: SentenceTransformerEmbedder, length: int, count: int) -> list[str]:
    """`count` different texts of at most `length` tokens (a few less where decoding and
    encoding again disagree), stripped as the chunker sees them. Each is in one language, the
    languages taking turns: the sample documents of a language, repeated as needed, cut at
    different places."""
    tokenizer = embedder.model.tokenizer
    by_language: dict[str, list[str]] = {}
    for document in sample_documents():
        by_language.setdefault(document["lang"], []).append(document["text"])
    streams = [
        tokenizer(" ".join(texts), add_special_tokens=False)["input_ids"]
        for texts in by_language.values()
    ]
    body = length - embedder.count_tokens("")  # room left by the special tokens
    texts = []
    for n in range(count):
        stream = streams[n % len(streams)]
        start = (n // len(streams)) * 97
        stream = stream * (1 + (start + body) // len(stream))
        size = body
        while True:
            text = tokenizer.decode(stream[start : start + size]).strip()
            excess = embedder.count_tokens(text) - length
            if excess <= 0:
                break
            size -= excess
        texts.append(text)
    return texts


# -- the model ---------------------------------------------------------------------------


def bare_forward(embedder: SentenceTransformerEmbedder, texts: list[str]) -> float:
    """Seconds for the model alone over the product's batches, inputs already on the device."""
    import torch

    batches = embedder.plan(texts)
    inputs = [
        embedder.to_device(embedder.model.preprocess([texts[i] for i in batch]))
        for batch in batches
    ]

    def run() -> None:
        with torch.inference_mode():
            outputs = [embedder.model(features)["sentence_embedding"] for features in inputs]
            torch.cat(outputs).float().cpu()

    return timed(run)[0]


def ingest_path(engine: Engine, texts: list[str], name: str, chunk_tokens: int) -> float:
    """Seconds for `ingest_stream` to store `texts` as new documents of a fresh collection."""
    settings, embedder = engine.settings, engine.embedder
    collection = engine.store.create_collection(
        collection_spec(name, settings, embedder, chunk_tokens=chunk_tokens, chunk_overlap=0)
    )
    documents = [DocumentIn(id=f"{name}-{n}", text=text) for n, text in enumerate(texts)]
    ingestor = Ingestor(engine.store, embedder, collection, engine.languages)
    batch = settings.ingest_batch_documents
    seconds, summary = timed(
        lambda: ingest_stream(documents, ingestor, batch, overlap=engine.overlap)
    )
    assert summary.chunks == len(texts) and not summary.errors, summary
    return seconds


def measure_length(
    engine: Engine, length: int, tokens: int, repeats: int
) -> tuple[list[object], str]:
    """One table row for chunks of `length` tokens; returns it and the collection's name."""
    embedder = engine.embedder
    assert isinstance(embedder, SentenceTransformerEmbedder)
    count = max(2, tokens // length)
    texts = texts_of_length(embedder, length, count)
    total_tokens = sum(embedder.count_tokens(text) for text in texts)
    log(f"{length} tokens: {count} chunks, {total_tokens} tokens; warming up")
    peak_gib(reset=True)
    bare_forward(embedder, texts)
    bare, ingest = [], []
    for repeat in range(repeats):
        name = f"len{length}-r{repeat}"
        steps = [
            lambda: bare.append(bare_forward(embedder, texts)),
            lambda name=name: ingest.append(ingest_path(engine, texts, name, length)),
        ]
        for step in steps if repeat % 2 == 0 else reversed(steps):
            step()
        log(f"{length} tokens, repeat {repeat + 1}: bare {bare[-1]:.2f} s, ingest {ingest[-1]:.2f}")
    ratios = [b / i for b, i in zip(bare, ingest, strict=True)]
    bare_s, ingest_s = statistics.median(bare), statistics.median(ingest)
    peak = peak_gib()
    row: list[object] = [
        length,
        count,
        f"{total_tokens / bare_s:,.0f}",
        f"{total_tokens / ingest_s:,.0f}",
        f"{count / bare_s:.1f}",
        f"{count / ingest_s:.1f}",
        statistics.median(ratios),
        " ".join(f"{r:.2f}" for r in ratios),
        "-" if peak is None else f"{peak:.1f}",
    ]
    return row, f"len{length}-r{repeats - 1}"


def query_latency(engine: Engine, collection: str, count: int) -> list[list[object]]:
    """p50/p99 of whole searches and of their embedding stage, one query at a time."""
    questions = [" ".join(text.split()[:12]) for text in sample_texts()]
    engine.indexes.get(engine.store.get_collection(collection))  # build and catch up
    for question in questions[:5]:
        engine.searcher.search(collection, SearchRequest(query=question))  # warm-up
    total, embed = [], []
    for n in range(count):
        _, watch = engine.searcher.search_timed(
            collection, SearchRequest(query=questions[n % len(questions)], k=K)
        )
        total.append(watch.total_ms())
        embed.append(watch.stages_ms["embed"])
    return [
        [stage, f"{np.percentile(ms, 50):.1f}", f"{np.percentile(ms, 99):.1f}"]
        for stage, ms in (("search (whole)", total), ("query embedding", embed))
    ]


# -- FAISS -------------------------------------------------------------------------------


def build(corpus: np.ndarray, sample: np.ndarray, use_gpu: bool) -> VectorIndex:
    """IVF at the engine's plan for `corpus`, trained on `sample` (synthetic vectors of one
    language: the GPU indexes take a plain coarse quantizer), as the engine builds it."""
    index = VectorIndex(corpus.shape[1], plan_index(len(corpus), 1), use_gpu=use_gpu)
    index.train(sample, ["und"] * len(sample))
    index.add(np.arange(len(corpus), dtype=np.int64), corpus)
    return index


def batch_ms(index: VectorIndex, queries: np.ndarray, nprobe: int) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    _, ids = index.search(queries, K, nprobe)
    return ids, (time.perf_counter() - started) * 1000 / len(queries)


def single_ms(index: VectorIndex, queries: np.ndarray, nprobe: int) -> float:
    return median_latency(lambda query: index.search(query, K, nprobe), queries)


def faiss_tables(n: int, dim: int, n_queries: int, work: Path) -> tuple[str, list[list[object]]]:
    """IVF-Flat built on the GPU (when faiss has one) and on the CPU; search speed per nprobe."""
    log(f"FAISS: drawing {n:,} + {n_queries} vectors of {dim} dimensions")
    everything = gaussian_mixture(n + n_queries, max(1, n // 500), SEED, dim)
    corpus, queries = everything[:n], everything[n:]
    exact = faiss.IndexFlatIP(dim)
    exact.add(corpus)
    _, truth = exact.search(queries, K)
    del exact
    plan = plan_index(n, 1)
    rng = np.random.default_rng(SEED)
    sample = corpus[rng.choice(n, min(n, plan.nlist * POINTS_PER_CENTROID), replace=False)]
    gpus = gpu_count()
    cpu_build, cpu_index = timed(lambda: build(corpus, sample, use_gpu=False))
    log(f"FAISS: CPU build {cpu_build:.1f} s")
    gpu_index, gpu_build = None, None
    if gpus:
        gpu_build, gpu_index = timed(lambda: build(corpus, sample, use_gpu=True))
        gpu_index.save(work / "ivf.faiss")  # the CPU copy a snapshot holds
        # Searched on the CPU, the GPU-trained index has the GPU's recall by construction.
        cpu_index = VectorIndex.load(work / "ivf.faiss", dim, plan, use_gpu=False)
        log(f"FAISS: GPU build {gpu_build:.1f} s")
    header = (
        f"IVF-Flat, {n:,} vectors of {dim} dimensions, nlist {plan.nlist}; build (k-means on "
        f"{len(sample):,} + add): CPU {cpu_build:.1f} s"
        + (f", GPU {gpu_build:.1f} s ({cpu_build / gpu_build:.0f}x)" if gpu_build else ", no GPU")
    )
    rows: list[list[object]] = []
    singles = queries[:100]
    for nprobe in (1, 4, 8, 16, 32, 64, 128):
        if nprobe > plan.nlist:
            break
        found, cpu_ms = batch_ms(cpu_index, queries, nprobe)
        row: list[object] = [nprobe, recall(found, truth), f"{cpu_ms:.3f}"]
        cpu_one = single_ms(cpu_index, singles, nprobe)
        if gpu_index is not None:
            gpu_found, gpu_ms = batch_ms(gpu_index, queries, nprobe)
            gpu_one = single_ms(gpu_index, singles, nprobe)
            row += [recall(gpu_found, truth), f"{gpu_ms:.4f}", f"{cpu_ms / gpu_ms:.0f}x"]
            row += [f"{cpu_one:.2f}", f"{gpu_one:.2f}", f"{cpu_one / gpu_one:.1f}x"]
        else:
            row += ["-", "-", "-", f"{cpu_one:.2f}", "-", "-"]
        rows.append(row)
        log(f"FAISS nprobe {nprobe}: recall {row[1]:.3f}")
    return header, rows


# -- main --------------------------------------------------------------------------------


def load(args: argparse.Namespace, work: Path, longest: int) -> Engine:
    import torch

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    folder = args.model
    if folder is None:
        on_gpu = device.startswith("cuda")
        log(f"building a random {args.shape} model on {device}")
        folder = str(
            build_random_qwen3(
                work / "model",
                SHAPES[args.shape],
                texts=sample_texts(),
                device=device,
                dtype="bfloat16" if on_gpu else "float32",
                max_seq_length=longest,
                tokenizer_vocab=4000,
            )
        )
    settings = Settings(
        data_dir=work / "data",
        embedder="sentence-transformers",
        model=folder,
        device=device,
        dtype=args.dtype,
    )
    log(f"loading {folder} the product's way")
    return Engine.open(settings)


def main(argv: Sequence[str] | None = None) -> int:
    import sentence_transformers
    import torch
    import transformers

    args = parse_args(argv)
    lengths = [int(value) for value in args.lengths.split(",")]
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        work = Path(scratch)
        engine = load(args, work, max(lengths))
        embedder = engine.embedder
        described = embedder.describe()
        card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
        print(f"# GPU path: {card}\n")
        print(f"- machine: {machine_description()}; code: {code_version()}")
        print(
            f"- torch {torch.__version__}, transformers {transformers.__version__}, "
            f"sentence-transformers {sentence_transformers.__version__}, faiss {faiss.__version__}"
            f" ({gpu_count()} GPUs)"
        )
        print(f"- model: {args.model or 'random ' + args.shape}; {json.dumps(described)}")
        print(
            f"- ingest: batches of {engine.settings.ingest_batch_documents} documents, overlap "
            f"{engine.overlap}, {engine.languages.processes} language processes; model batches of "
            f"{engine.settings.batch_tokens} tokens at most\n"
        )
        rows, last = [], ""
        for length in lengths:
            row, name = measure_length(engine, length, args.tokens, args.repeats)
            rows.append(row)
            last = last or name
        headers = [
            "chunk tokens", "chunks", "bare tokens/s", "ingest tokens/s", "bare chunks/s",
            "ingest chunks/s", "ingest/bare", "per repeat", "peak GPU GiB",
        ]
        print("## Ingest path vs bare forward pass\n")
        print(format_table(headers, rows) + "\n")
        latency = query_latency(engine, last, args.queries)
        print(f"## Query latency ({args.queries} searches, one at a time, over `{last}`)\n")
        print(format_table(["stage", "p50 ms", "p99 ms"], latency) + "\n")
        engine.close()
        faiss_header, faiss_rows = "", []
        if args.faiss_vectors:
            faiss_header, faiss_rows = faiss_tables(
                args.faiss_vectors, args.faiss_dim, args.faiss_queries, work
            )
            print(f"## FAISS: {faiss_header}\n")
            headers = [
                "nprobe", "recall@10 CPU", "CPU ms/query (batch)", "recall@10 GPU",
                "GPU ms/query (batch)", "batch speed-up", "CPU 1 query ms", "GPU 1 query ms",
                "1-query speed-up",
            ]
            print(format_table(headers, faiss_rows) + "\n")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"card": card, "model": described, "ingest": rows, "latency": latency,
                 "faiss": {"header": faiss_header, "rows": faiss_rows}},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
