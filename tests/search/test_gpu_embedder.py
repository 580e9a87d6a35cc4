"""The sentence-transformers backend on a CUDA GPU (skipped without one; CI has none): half
precision close to fp32 on the CPU, queries on their own stream, a 32k-token chunk, the
snapshot of a GPU-trained index reloading on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from search.embedders.sentence_transformers import SentenceTransformerEmbedder
from search.vector_index import VectorIndex, gpu_count, plan_index
from tests.random_models import SHAPES, build_random_qwen3

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

TEXTS = [
    "The Eiffel Tower is about 330 metres tall.",
    "Der Fuji ist mit 3776 Metern der höchste Berg Japans.",
    "富士山は日本で一番高い山です。",
] * 5


@pytest.fixture(scope="module")
def long_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_qwen3(
        tmp_path_factory.mktemp("gpu-model"), SHAPES["tiny"], max_seq_length=32768
    )


def test_half_precision_on_the_gpu_matches_fp32_on_the_cpu(long_qwen3: Path) -> None:
    gpu = SentenceTransformerEmbedder(str(long_qwen3), device="cuda")
    cpu = SentenceTransformerEmbedder(str(long_qwen3), device="cpu")
    assert gpu.describe()["dtype"] in ("bfloat16", "float16")
    similarity = np.sum(gpu.embed_documents(TEXTS) * cpu.embed_documents(TEXTS), axis=1)
    assert similarity.min() > 0.99
    queries = gpu.embed_queries(TEXTS[:3])  # on the high-priority stream
    on_default = gpu._forward([gpu.format_query(t) for t in TEXTS[:3]], [[0, 1, 2]])
    np.testing.assert_allclose(queries, on_default / np.linalg.norm(on_default, axis=1)[:, None],
                               atol=1e-3)


def test_a_32k_token_chunk_embeds_in_one_piece(long_qwen3: Path) -> None:
    gpu = SentenceTransformerEmbedder(str(long_qwen3), device="cuda")
    text = " ".join(TEXTS * 400)
    assert gpu.count_tokens(text) >= 32768  # truncated to the model's 32,768
    torch.cuda.reset_peak_memory_stats()
    vector = gpu.embed_documents([text])
    assert vector.shape == (1, gpu.dimension) and np.isfinite(vector).all()
    assert torch.cuda.max_memory_allocated() < 8 * 2**30


@pytest.mark.skipif(gpu_count() == 0, reason="needs faiss with GPU support")
def test_a_gpu_trained_index_snapshots_to_the_cpu(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20_000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    plan = plan_index(len(vectors), 10_000)
    index = VectorIndex(64, plan, use_gpu=True)
    index.train(vectors[:10_000], ["en"] * 10_000)
    index.add(np.arange(len(vectors)), vectors)
    index.save(tmp_path / "ivf.faiss")
    reloaded = VectorIndex.load(tmp_path / "ivf.faiss", 64, plan, use_gpu=False)
    on_gpu = index.search(vectors[:20], 10, nprobe=plan.nlist)[1]
    on_cpu = reloaded.search(vectors[:20], 10, nprobe=plan.nlist)[1]
    assert index.on_gpu and not reloaded.on_gpu
    assert (on_gpu[:, 0] == np.arange(20)).all() and (on_cpu[:, 0] == np.arange(20)).all()
