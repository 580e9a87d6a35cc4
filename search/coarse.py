"""IVF lists that do not split by language: the coarse quantizer assigns lists on vectors whose
language component is projected out.

Multilingual embeddings keep a direction per language, so k-means on the raw vectors gives
each language lists of its own, and probing the lists nearest a question reaches mostly
documents in the question's language: cross-lingual answers and language filters then find
too little. Here each language's mean vector in the training sample, less the mean of those
means, spans a small "language subspace"; the quantizer sees the normalised projection onto
its orthogonal complement, for documents and questions alike, so no query language is
needed. Only list assignment changes: scores stay the stored vectors' true inner products
(the IVF codecs encode the vectors themselves, not residuals from these centroids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import faiss
import numpy as np

KMEANS_ITERATIONS = 20
# A language shapes the subspace once the sample has this many of its chunks (and 1 % of it):
# fewer give a mean too noisy to separate language from topic.
MIN_LANGUAGE_CHUNKS = 50


def language_subspace(vectors: np.ndarray, langs: Sequence[str]) -> np.ndarray:
    """Orthonormal rows spanning the directions that tell the sample's languages apart
    (at most one fewer than the languages that have enough chunks); (0, d) for one language."""
    counts = Counter(langs)
    enough = max(MIN_LANGUAGE_CHUNKS, len(langs) // 100)
    kept = sorted(lang for lang, n in counts.items() if n >= enough)
    if len(kept) < 2:
        return np.zeros((0, vectors.shape[1]), np.float32)
    labels = np.asarray(langs)
    means = np.stack([vectors[labels == lang].mean(axis=0) for lang in kept])
    means -= means.mean(axis=0)
    _, singular, rows = np.linalg.svd(means, full_matrices=False)
    rank = int((singular > singular[0] * 1e-6).sum())
    return rows[:rank].astype(np.float32)


def complement_transform(subspace: np.ndarray, dimension: int) -> faiss.LinearTransform:
    """The projection onto the orthogonal complement of `subspace`, in its own orthonormal
    coordinates (dimension minus the subspace's rank)."""
    projector = np.eye(dimension) - subspace.T.astype(np.float64) @ subspace
    values, vectors = np.linalg.eigh(projector)  # eigenvalues 0 (the subspace) and 1
    basis = vectors[:, values > 0.5].T.astype(np.float32)
    transform = faiss.LinearTransform(dimension, len(basis), False)
    faiss.copy_array_to_vector(np.ascontiguousarray(basis).ravel(), transform.A)
    faiss.copy_array_to_vector(np.zeros(len(basis), np.float32), transform.b)
    transform.is_trained = True
    transform.set_is_orthonormal()
    return transform


def train_quantizer(
    sample: np.ndarray, langs: Sequence[str], nlist: int, seed: int, use_gpu: bool = False
) -> faiss.Index:
    """A trained coarse quantizer of `nlist` lists for vectors like `sample` (chunk languages
    `langs`): inner product on the normalised language-neutral projection, or on the
    vectors themselves when the sample has one language."""
    dimension = sample.shape[1]
    subspace = language_subspace(sample, langs)
    transform = complement_transform(subspace, dimension) if len(subspace) else None
    projected = transform.apply(sample) if transform is not None else sample.copy()
    projected = np.ascontiguousarray(projected, dtype=np.float32)
    faiss.normalize_L2(projected)
    kmeans = faiss.Kmeans(
        projected.shape[1], nlist, niter=KMEANS_ITERATIONS, seed=seed, spherical=True,
        gpu=use_gpu, max_points_per_centroid=1 << 30,
    )
    kmeans.train(projected)
    lists = faiss.IndexFlatIP(projected.shape[1])
    lists.add(np.asarray(kmeans.centroids, dtype=np.float32))
    if transform is None:
        return lists
    quantizer = faiss.IndexPreTransform(faiss.NormalizationTransform(projected.shape[1]), lists)
    quantizer.prepend_transform(transform)
    # A serialise round trip leaves one C++ object that owns its parts (no Python references
    # the index could outlive).
    return faiss.deserialize_index(faiss.serialize_index(quantizer))
