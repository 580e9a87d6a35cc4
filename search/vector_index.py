"""One FAISS index behind a small interface, and the one policy that sizes it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

TRAINING_SEED = 1234
POINTS_PER_CENTROID = 64  # faiss warns below 39 training points per list


@dataclass(frozen=True)
class IndexPlan:
    """Which index a collection of a given size gets: exact search, or IVF with `nlist` lists."""

    kind: Literal["flat", "ivf"]
    nlist: int = 0
    nprobe: int = 0


def plan_index(n_vectors: int, ivf_min_vectors: int) -> IndexPlan:
    """Exact search below `ivf_min_vectors`; above, IVF with nlist ≈ 4·√N and nprobe ≈ nlist/16.

    nlist is capped so that every list gets at least POINTS_PER_CENTROID training points.
    """
    if n_vectors < ivf_min_vectors:
        return IndexPlan("flat")
    nlist = min(round(4 * math.sqrt(n_vectors)), n_vectors // POINTS_PER_CENTROID)
    nlist = max(nlist, 1)
    return IndexPlan("ivf", nlist=nlist, nprobe=max(1, min(nlist, max(8, nlist // 16))))


class VectorIndex:
    """Inner-product search over L2-normalised vectors, keyed by chunk id. Not thread-safe:
    callers serialise writes against searches."""

    def __init__(self, dimension: int, plan: IndexPlan, faiss_index: Any = None) -> None:
        self.dimension = dimension
        self.plan = plan
        # faiss's generated type stubs do not know the SWIG classes' real signatures.
        self._index: Any = faiss_index if faiss_index is not None else self._empty(dimension, plan)

    @staticmethod
    def _empty(dimension: int, plan: IndexPlan) -> Any:
        if plan.kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, plan.nlist, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = plan.nprobe
        return index

    @property
    def needs_training(self) -> bool:
        return not self._index.is_trained

    def train(self, sample: np.ndarray) -> None:
        """Train IVF centroids on `sample` (a seeded draw from the collection's vectors)."""
        self._index.cp.seed = TRAINING_SEED
        self._index.train(np.ascontiguousarray(sample, dtype=np.float32))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
            )

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(
        self, queries: np.ndarray, k: int, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, chunk ids) per query; missing slots have id -1."""
        k = max(1, min(k, self.count)) if self.count else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.plan.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=nprobe or self.plan.nprobe)  # type: ignore[call-arg]
            return self._index.search(queries, k, params=params)
        return self._index.search(queries, k)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int, plan: IndexPlan) -> VectorIndex:
        return cls(dimension, plan, faiss.read_index(str(path)))

    def describe(self) -> dict[str, object]:
        return {**asdict(self.plan), "count": self.count, "dimension": self.dimension}
