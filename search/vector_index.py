"""One FAISS index behind a small interface, and the policies that size and search it."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import faiss
import numpy as np

from search.coarse import train_quantizer

log = logging.getLogger(__name__)

TRAINING_SEED = 1234
POINTS_PER_CENTROID = 64  # faiss warns below 39 training points per list
MIN_PQ_TRAINING = 256 * 39  # ivf_pq's codebooks have 256 codes each: faiss wants 39 points a code
# Bumped when snapshots written before cannot serve as well as a rebuild: 2 = IVF lists
# assigned on language-neutral vectors (search.coarse); 3 = a lexical index beside the
# vectors (search.lexical_index). Older snapshots are rebuilt from the database.
INDEX_FORMAT = 3
IndexType = Literal["flat", "ivf", "ivf_sq8", "ivf_pq"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)


@dataclass(frozen=True)
class IndexPlan:
    """Which index a collection gets: exact search (`flat`), or IVF with `nlist` lists and
    vectors stored whole (`ivf`), as 8-bit scalars (`ivf_sq8`, 4x smaller) or as product
    codes (`ivf_pq`, dimension/4 bytes, 16x smaller, less exact)."""

    kind: IndexType
    nlist: int = 0
    nprobe: int = 0

    @property
    def is_ivf(self) -> bool:
        return self.kind != "flat"


@dataclass(frozen=True)
class IndexSettings:
    """A collection's choice of index (`collections.index_settings`); None means the policy's."""

    type: IndexType | Literal["auto"] = "auto"
    nlist: int | None = None
    nprobe: int | None = None

    @classmethod
    def of(cls, stored: dict[str, Any]) -> IndexSettings:
        return cls(**{k: v for k, v in stored.items() if k in ("type", "nlist", "nprobe")})


def default_nprobe(nlist: int) -> int:
    """Lists searched per query: measured on multilingual XQuAD vectors (bench/crosslingual_ivf.py)
    to keep recall@10 against exact search at 0.95 or more in every query language."""
    return max(1, min(nlist, max(16, math.ceil(nlist / 8))))


def plan_index(
    n_vectors: int, ivf_min_vectors: int, settings: IndexSettings | None = None
) -> IndexPlan:
    """The index for `n_vectors`: by default exact search below `ivf_min_vectors` and IVF
    above, with nlist ≈ 4·√N and `default_nprobe`. A collection's settings may fix the type
    (an IVF type applies once there are enough vectors to train it: a list's worth, and
    MIN_PQ_TRAINING for ivf_pq), nlist and nprobe.

    nlist is capped so that every list gets at least POINTS_PER_CENTROID training points.
    """
    settings = settings or IndexSettings()
    most_lists = n_vectors // POINTS_PER_CENTROID
    too_few = n_vectors < (ivf_min_vectors if settings.type == "auto" else MIN_PQ_TRAINING
                           if settings.type == "ivf_pq" else POINTS_PER_CENTROID)
    if settings.type == "flat" or too_few:
        return IndexPlan("flat")
    nlist = max(1, min(settings.nlist or round(4 * math.sqrt(n_vectors)), most_lists))
    kind: IndexType = "ivf" if settings.type == "auto" else settings.type
    nprobe = min(nlist, settings.nprobe or default_nprobe(nlist))
    return IndexPlan(kind, nlist=nlist, nprobe=nprobe)


# A filter matching at most this share of the collection is searched in every list: the
# matching vectors are then few and spread over most lists anyway (measured, see README).
EXHAUSTIVE_SHARE = 0.02


def filtered_nprobe(plan: IndexPlan, total: int, matching: int, nprobe: int | None = None) -> int:
    """Lists to search when a filter keeps `matching` of `total` vectors.

    A filter keeping a share s of the vectors leaves about s of each list, and its k-th best
    match ranks about k/s among all vectors: searching nprobe/s^0.75 lists reached recall@10
    0.99 or more against exact filtered search on multilingual XQuAD vectors for language
    filters (s ≈ 0.08) and metadata filters of 10 %, where nprobe/s costs twice the time
    (bench/crosslingual_ivf.py). A share of EXHAUSTIVE_SHARE or less searches every list
    (exact among the matches). A requested `nprobe` is the base.
    """
    base = nprobe or plan.nprobe
    if not plan.is_ivf or matching >= total:
        return base
    if matching <= total * EXHAUSTIVE_SHARE:
        return plan.nlist
    share = max(matching, 1) / total
    return min(plan.nlist, max(base, math.ceil(base / share**0.75)))


def gpu_count() -> int:
    """GPUs FAISS can use: always 0 with faiss-cpu or without a CUDA device."""
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return int(get_num_gpus()) if get_num_gpus else 0


class Selection:
    """A set of chunk ids for FAISS to search among (an id selector), and how many there are.

    Sparse ids (fewer than one in 256 of the id range) go in a hashed batch; denser ones in
    a bitmap over the id range (one bit per id, built in one vectorised step). The selector
    points into the array this object keeps alive.
    """

    def __init__(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self.count = len(ids)
        self._bitmap = not (not self.count or self.count * 256 < int(ids.max()))
        if not self._bitmap:
            self._keep: np.ndarray = ids
            self.selector: Any = faiss.IDSelectorBatch(self.count, faiss.swig_ptr(ids))
            return
        bits = np.zeros(int(ids.max()) + 1, dtype=bool)
        bits[ids] = True
        self._keep = np.packbits(bits, bitorder="little")
        self.selector = faiss.IDSelectorBitmap(len(self._keep), faiss.swig_ptr(self._keep))

    @property
    def nbytes(self) -> int:
        return int(self._keep.nbytes) * (6 if not self._bitmap else 1)  # a hash set costs more

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` are in the selection (a boolean per id)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not self._bitmap:
            return np.isin(ids, self._keep)
        inside = (ids >= 0) & (ids < len(self._keep) * 8)
        found = np.zeros(len(ids), dtype=bool)
        where = ids[inside]
        found[inside] = (self._keep[where >> 3] >> (where & 7)) & 1 == 1
        return found

    @property
    def ids(self) -> np.ndarray:
        """The ids, sorted (for inspection)."""
        if not self._bitmap:
            return np.sort(self._keep)
        return np.flatnonzero(np.unpackbits(self._keep, bitorder="little")).astype(np.int64)


def pq_bytes(dimension: int) -> int:
    """Bytes per vector of `ivf_pq`: about dimension/4 (one byte per 4 components), as a
    divisor of the dimension as faiss requires."""
    wanted = max(1, dimension // 4)
    return max(m for m in range(1, wanted + 1) if dimension % m == 0)


class VectorIndex:
    """Inner-product search over L2-normalised vectors, keyed by chunk id. Not thread-safe:
    callers serialise writes against searches.

    The CPU index is the truth (it is saved and loses removals exactly). With `use_gpu` and a
    GPU-enabled faiss, IVF k-means runs on the GPU and unfiltered searches go to a GPU replica
    that follows additions and is re-copied after removals; any GPU failure (faiss's GPU
    indexes take only a plain coarse quantizer, so a multilingual IVF stays on the CPU) falls
    back to the CPU.
    """

    def __init__(
        self, dimension: int, plan: IndexPlan, faiss_index: Any = None, use_gpu: bool = False
    ) -> None:
        self.dimension = dimension
        self.plan = plan
        # faiss's generated type stubs do not know the SWIG classes' real signatures. An IVF
        # index exists only once trained (its coarse quantizer is built from the sample).
        self._index: Any = faiss_index
        if faiss_index is None and plan.kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._use_gpu = use_gpu and gpu_count() > 0
        self._gpu_resources: Any = None
        self._replica: Any = None

    @property
    def needs_training(self) -> bool:
        return self._index is None or not self._index.is_trained

    @property
    def on_gpu(self) -> bool:
        return self._use_gpu

    def train(self, sample: np.ndarray, langs: Sequence[str]) -> None:
        """Build the IVF index from `sample` (a seeded draw from the collection's vectors, with
        their chunks' languages): coarse lists on language-neutral vectors, then the codec."""
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        nlist = self.plan.nlist
        try:
            quantizer = train_quantizer(sample, langs, nlist, TRAINING_SEED, self._use_gpu)
        except RuntimeError as exc:
            if not self._use_gpu:
                raise
            self._give_up_gpu(exc)
            quantizer = train_quantizer(sample, langs, nlist, TRAINING_SEED)
        d, ip = self.dimension, faiss.METRIC_INNER_PRODUCT
        index: Any
        if self.plan.kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, nlist, ip)
        elif self.plan.kind == "ivf_sq8":
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, ip, False
            )
        else:
            index = faiss.IndexIVFPQ(quantizer, d, nlist, pq_bytes(d), 8, ip)
            index.by_residual = False  # codes of the vectors: scores need no centroid term
        index.train(sample)  # the lists are trained already: only the codec learns
        index.nprobe = self.plan.nprobe
        # A serialise round trip makes one C++ object that owns its quantizer.
        self._index = faiss.deserialize_index(faiss.serialize_index(index))

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
        if not len(ids) or self._index is None:
            return 0
        self._replica = None  # GPU indexes cannot remove; re-copied at the next search
        return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(
        self,
        queries: np.ndarray,
        k: int,
        nprobe: int | None = None,
        among: Selection | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, chunk ids) per query, among the chunk ids of `among` if given;
        missing slots have id -1."""
        k = max(1, min(k, self.count)) if self.count else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self._index is None:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1)
        nprobe = nprobe or self.plan.nprobe
        replica = self._gpu_replica() if among is None else None
        if replica is not None:
            try:
                if self.plan.is_ivf:
                    replica.nprobe = nprobe
                return replica.search(queries, k)
            except RuntimeError as exc:
                self._give_up_gpu(exc)
        selector = among.selector if among is not None else None
        if self.plan.is_ivf:
            params: Any = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None  # type: ignore[call-arg]
        with _one_thread_for(len(queries)):
            return self._index.search(queries, k, params=params)

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
        return int(self._index.ntotal) if self._index is not None else 0

    def ids(self) -> np.ndarray:
        """Every chunk id the index holds, sorted (for checks that it equals the database)."""
        if self._index is None:
            return np.zeros(0, np.int64)
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

    def memory_bytes(self) -> int:
        """The index's size as saved (vectors or codes, ids, lists, quantizer)."""
        return int(faiss.serialize_index(self._index).nbytes) if self._index is not None else 0

    def describe(self) -> dict[str, object]:
        return {
            **asdict(self.plan),
            "count": self.count,
            "dimension": self.dimension,
            "gpu": self.on_gpu,
        }


@contextmanager
def _one_thread_for(queries: int) -> Iterator[None]:
    """Run a single query's search on the calling thread alone: an OpenMP team gains
    nothing on one query, and its threads spin on after every search (about 8 ms of a
    core per search measured under load here), taking the cores other requests need.
    The setting belongs to the calling thread and is restored."""
    if queries != 1:
        yield
        return
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
