"""A live `xlsearch serve` on loopback, used by the official OpenAI client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from openai import OpenAI

from search.embedders import Embedder
from tests.processes import running_server


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("live") / "data", "--no-worker") as url:
        yield url


def test_openai_client_single_and_batch(base_url: str, bundled_embedder: Embedder) -> None:
    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused")
    [model] = client.models.list().data
    single = client.embeddings.create(model=model.id, input="Wie hoch ist der Eiffelturm?")
    batch = client.embeddings.create(model=model.id, input=["Tee", "Kaffee", "Honig"])
    assert len(single.data[0].embedding) == 384 and [d.index for d in batch.data] == [0, 1, 2]
    expected = bundled_embedder.embed_documents(["Tee", "Kaffee", "Honig"])
    np.testing.assert_allclose([d.embedding for d in batch.data], expected, atol=1e-5)
    assert batch.usage.total_tokens > 3


def test_openai_client_dimensions_and_dim(base_url: str, bundled_embedder: Embedder) -> None:
    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused")
    cut = client.embeddings.create(model="any", input=["Tee"], dimensions=128)
    seed_style = client.embeddings.create(model="any", input=["Tee"], extra_body={"dim": 64})
    assert len(cut.data[0].embedding) == 128 and len(seed_style.data[0].embedding) == 64
    np.testing.assert_allclose(
        seed_style.data[0].embedding,
        bundled_embedder.embed_documents(["Tee"], dimension=64)[0],
        atol=1e-5,
    )
    query = client.embeddings.create(model="any", input=["Tee"], extra_body={"input_type": "query"})
    assert not np.allclose(query.data[0].embedding, bundled_embedder.embed_documents(["Tee"])[0])


def test_health_and_metrics_on_the_live_server(base_url: str, tmp_path: Path) -> None:
    import httpx

    assert httpx.get(f"{base_url}/health").json() == {"status": "ok"}
    assert "xlsearch_http_requests_total" in httpx.get(f"{base_url}/metrics").text
