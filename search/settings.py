"""All configuration in one place: `XLSEARCH_*` environment variables with laptop defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EmbedderKind = Literal["bundled", "sentence-transformers", "openai"]
ProfileName = Literal["auto", "qwen3", "e5", "plain"]


class Settings(BaseSettings):
    """Settings for every xlsearch process; each field maps to `XLSEARCH_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="XLSEARCH_", frozen=True, extra="ignore")

    data_dir: Path = Field(
        Path("xlsearch-data"), description="Folder for the SQLite file and index snapshots."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in the data directory."
    )

    embedder: EmbedderKind = Field(
        "bundled",
        description="bundled (offline multilingual-e5-small, 4-bit), sentence-transformers, "
        "or openai (any OpenAI-compatible /v1/embeddings server: SGLang, vLLM, TEI).",
    )
    model: str | None = Field(
        None,
        description="Model path or hub id (sentence-transformers) or served model name (openai).",
    )
    model_profile: ProfileName = Field(
        "auto", description="Prompt and pooling conventions; auto picks from the model name."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Weights precision; auto is bf16 (or fp16) on a GPU, fp32 on CPU."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for embedding; default: all cores."
    )
    batch_tokens: int = Field(
        16384, ge=1, description="Token budget of one embedding batch (padded tokens)."
    )
    max_batch_size: int = Field(64, ge=1, description="Most texts in one embedding batch.")

    openai_base_url: str = Field(
        "http://127.0.0.1:30000/v1", description="Base URL of the OpenAI-compatible server."
    )
    openai_api_key: SecretStr | None = Field(None, description="API key for that server.")
    openai_timeout_s: float = Field(60.0, gt=0, description="Timeout of one HTTP request.")
    openai_max_retries: int = Field(4, ge=0, description="Retries with backoff on errors.")
    model_max_tokens: int | None = Field(
        None, ge=16, description="Context length of a served model; default from its profile."
    )
    tokenizer: str | None = Field(
        None, description="Local tokenizer for counting tokens of a served model."
    )

    chunk_tokens: int | None = Field(
        None, ge=16, description="Most tokens in a chunk; default suits the model."
    )
    chunk_overlap: int | None = Field(
        None, ge=0, description="Tokens shared by neighbouring chunks; default chunk_tokens/8."
    )
    dimension: int | None = Field(
        None, ge=32, description="Matryoshka dimension of new collections; default: the model's."
    )
    query_instruction: str | None = Field(
        None, description="Task for instruction-aware models (Qwen3); default: web search."
    )

    ivf_min_vectors: int = Field(
        50_000, ge=1000, description="Collections with fewer vectors use exact search."
    )
    search_overfetch: int = Field(
        4, ge=1, description="Chunks fetched per wanted document before grouping."
    )
    ingest_batch_documents: int = Field(
        32, ge=1, description="Documents embedded together during ingestion."
    )

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.chunk_tokens and self.chunk_overlap and self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to `xlsearch.db` in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'xlsearch.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        """Where FAISS snapshots are written."""
        return self.data_dir / "indexes"


def settings_table() -> str:
    """The settings as a Markdown table (variable, default, meaning) for the README and CLI."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else f"`{field.default}`"
        rows.append(f"| `XLSEARCH_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows)
