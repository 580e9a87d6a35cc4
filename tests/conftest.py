"""Fixtures that build real parts offline: the bundled model (loaded once), engines on temp
SQLite files, and the sample corpus."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from search.embedders import Embedder
from search.embedders.bundled import BundledEmbedder
from search.engine import Engine
from search.schemas import DocumentIn
from search.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample.jsonl"


@pytest.fixture(scope="session")
def bundled_embedder() -> Embedder:
    """The real offline model, loaded once for the whole session."""
    return BundledEmbedder()


@pytest.fixture
def make_engine(tmp_path: Path, bundled_embedder: Embedder) -> Iterator[Callable[..., Engine]]:
    """Factory for engines on fresh SQLite files; keyword arguments override settings."""
    opened: list[Engine] = []

    def factory(embedder: Embedder | None = None, **overrides: Any) -> Engine:
        overrides.setdefault("data_dir", tmp_path / f"data{len(opened)}")
        engine = Engine.open(Settings(**overrides), embedder or bundled_embedder)
        opened.append(engine)
        return engine

    yield factory
    for engine in opened:
        engine.close()


@pytest.fixture(scope="session")
def sample_documents() -> list[DocumentIn]:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    return [DocumentIn.model_validate(json.loads(line)) for line in lines]


@pytest.fixture(scope="session")
def sample_engine(
    tmp_path_factory: pytest.TempPathFactory,
    bundled_embedder: Embedder,
    sample_documents: list[DocumentIn],
) -> Iterator[Engine]:
    """An engine with the sample corpus ingested, shared by read-only tests."""
    from indexer.pipeline import Ingestor

    engine = Engine.open(Settings(data_dir=tmp_path_factory.mktemp("sample")), bundled_embedder)
    collection = engine.store.get_collection("default")
    Ingestor(engine.store, bundled_embedder, collection).ingest(sample_documents)
    yield engine
    engine.close()
