"""One FAISS index behind a small interface, and the one policy that sizes it."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

log = logging.getLogger(__name__)

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


def gpu_count() -> int:
    """GPUs FAISS can use: always 0 with faiss-cpu or without a CUDA device."""
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return int(get_num_gpus()) if get_num_gpus else 0


class VectorIndex:
    """Inner-product search over L2-normalised vectors, keyed by chunk id. Not thread-safe:
    callers serialise writes against searches.

    The CPU index is the truth (it is saved and loses removals exactly). With `use_gpu` and a
    GPU-enabled faiss, IVF training runs on the GPU and searches go to a GPU replica that
    follows additions and is re-copied after removals; any GPU failure falls back to the CPU.
    """

    def __init__(
        self, dimension: int, plan: IndexPlan, faiss_index: Any = None, use_gpu: bool = False
    ) -> None:
        self.dimension = dimension
        self.plan = plan
        # faiss's generated type stubs do not know the SWIG classes' real signatures.
        self._index: Any = faiss_index if faiss_index is not None else self._empty(dimension, plan)
        self._use_gpu = use_gpu and gpu_count() > 0
        self._gpu_resources: Any = None
        self._replica: Any = None

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

    @property
    def on_gpu(self) -> bool:
        return self._use_gpu

    def train(self, sample: np.ndarray) -> None:
        """Train IVF centroids on `sample` (a seeded draw from the collection's vectors)."""
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        self._index.cp.seed = TRAINING_SEED
        if self._use_gpu:
            try:
                replica = self._copy_to_gpu()
                replica.train(sample)
                self._index = faiss.index_gpu_to_cpu(replica)
                self._replica = replica
                return
            except RuntimeError as exc:
                self._give_up_gpu(exc)
        self._index.train(sample)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        self._index.add_with_ids(vectors, ids)
        if self._replica is not None:
            try:
                self._replica.add_with_ids(vectors, ids)
            except RuntimeError as exc:
                self._give_up_gpu(exc)

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        self._replica = None  # GPU indexes cannot remove; re-copied at the next search
        return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(
        self, queries: np.ndarray, k: int, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, chunk ids) per query; missing slots have id -1."""
        k = max(1, min(k, self.count)) if self.count else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        nprobe = nprobe or self.plan.nprobe
        replica = self._gpu_replica()
        if replica is not None:
            try:
                if self.plan.kind == "ivf":
                    replica.nprobe = nprobe
                return replica.search(queries, k)
            except RuntimeError as exc:
                self._give_up_gpu(exc)
        if self.plan.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[call-arg]
            return self._index.search(queries, k, params=params)
        return self._index.search(queries, k)

    def _gpu_replica(self) -> Any:
        if self._use_gpu and self._replica is None:
            try:
                self._replica = self._copy_to_gpu()
            except RuntimeError as exc:
                self._give_up_gpu(exc)
        return self._replica

    def _copy_to_gpu(self) -> Any:
        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()  # type: ignore[attr-defined]
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)  # type: ignore[attr-defined]

    def _give_up_gpu(self, error: Exception) -> None:
        log.warning("FAISS on the GPU failed (%s); this index now searches on the CPU", error)
        self._use_gpu = False
        self._replica = None

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """Every chunk id the index holds, sorted (for checks that it equals the database)."""
        if self.plan.kind == "flat":
            return np.sort(faiss.vector_to_array(self._index.id_map))
        lists = self._index.invlists
        found = [
            faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
            for n in range(lists.nlist)
        ]
        return np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(
        cls, path: Path, dimension: int, plan: IndexPlan, use_gpu: bool = False
    ) -> VectorIndex:
        return cls(dimension, plan, faiss.read_index(str(path)), use_gpu)

    def describe(self) -> dict[str, object]:
        return {
            **asdict(self.plan),
            "count": self.count,
            "dimension": self.dimension,
            "gpu": self.on_gpu,
        }
