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
    attention: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto",
        description="Attention kernel; auto is FlashAttention-2 on a GPU when flash-attn is "
        "installed, else SDPA.",
    )
    devices: list[str] = Field(
        default_factory=list,
        description='Devices that embed documents together (JSON list, e.g. ["cuda:0","cuda:1"]); '
        "empty: just `device`.",
    )
    multi_device: Literal["processes", "pool"] = Field(
        "processes",
        description="With several `devices`: processes (`xlsearch worker` runs one worker per "
        "device) or pool (one process spreads document batches over a sentence-transformers pool).",
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
    openai_dimensions: Literal["auto", "send", "truncate"] = Field(
        "auto",
        description="Matryoshka dimensions with a served model: send asks the server for them, "
        "truncate cuts full vectors here, auto sends and falls back to truncating when the "
        "server refuses the field.",
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
    translations: bool = Field(
        True,
        description="Link translated copies of documents into translation sets as they "
        "arrive, so that search shows each set as one result.",
    )
    translation_cosine: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Cosine of two documents' mean vectors from which, as each other's "
        "nearest in their languages, they are linked as translations; set for the bundled "
        "model (bench/translations.py measures it for another).",
    )
    lexical_weight: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Hybrid search: how far lexical evidence (0..1: the share of the "
        "question's identifiers, or of its words, that a chunk matches) moves the cosine score.",
    )
    ingest_batch_documents: int = Field(
        32, ge=1, description="Documents embedded together during ingestion, at most."
    )
    ingest_batch_seconds: float = Field(
        0.8,
        ge=0,
        description="Fewer documents in a batch where the model would take longer than this to "
        "embed them, so that a job's progress moves about once a second; 0: every batch is "
        "ingest_batch_documents.",
    )
    ingest_overlap: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Read, chunk and write documents while the model embeds others; auto: when "
        "the model runs on a GPU or a server, not on this CPU.",
    )
    language_processes: int | None = Field(
        None,
        ge=0,
        description="Processes that detect document languages while ingesting; default: none, "
        "or up to 8 when ingestion overlaps (the model on a GPU or a server).",
    )
    job_stale_after_s: float = Field(
        60.0, gt=0, description="A running job without a heartbeat this long is taken over."
    )
    generation_keep_s: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        description="How long a collection's generation left by a migration is kept (and "
        "searched by processes with its model) so that a rollback can switch back to it.",
    )

    host: str = Field("127.0.0.1", description="Address `xlsearch serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `xlsearch serve` listens on.")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys (JSON list); when set, every write needs one.",
    )
    open_reads: bool = Field(
        True, description="With API keys set: allow searches and reads without a key."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list); none by default."
    )
    max_request_bytes: int = Field(10 * 2**20, ge=1024, description="Largest JSON request body.")
    max_upload_bytes: int = Field(
        4 * 2**30, ge=1024, description="Largest bulk upload (streamed to disk)."
    )
    max_document_bytes: int = Field(
        2 * 2**20,
        ge=1024,
        description="Largest document text (UTF-8 bytes; a file or a JSONL line); larger ones "
        "are refused per item.",
    )
    max_file_bytes: int = Field(
        100 * 2**20,
        ge=1024,
        description="Largest PDF, Word, PowerPoint, EPUB or HTML file read (its extracted text "
        "must also fit max_document_bytes); larger ones are refused per item.",
    )
    extract_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Processes that extract text from PDF, Office, EPUB and HTML files; 0: half "
        "the cores, 1 to 8.",
    )
    extract_timeout_s: float = Field(
        120.0, gt=0, description="Longest a file's text extraction may take before it fails."
    )
    max_unpacked_bytes: int = Field(
        2**30, ge=1024, description="Most bytes one uploaded ZIP may unpack to."
    )
    max_zip_ratio: float = Field(
        200.0, gt=1, description="Largest compression ratio of a ZIP entry (ZIP bombs)."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="A request body that sends nothing for this long gets a 408."
    )
    open_embeddings: bool = Field(
        True,
        description="With API keys set and reads open: allow POST /v1/embeddings without a key.",
    )
    max_embedding_tokens: int = Field(
        32_768, ge=16, description="Most tokens in one POST /v1/embeddings request."
    )
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Server folders bulk jobs may read from (JSON list); none by default.",
    )
    catch_up_interval_s: float = Field(
        0.25, gt=0, description="How often a server catches its indexes up with the database."
    )
    snapshot_interval_s: float = Field(
        60.0, gt=0, description="How often a server snapshots indexes that changed."
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

    @property
    def upload_dir(self) -> Path:
        """Where bulk uploads are kept until their job is done."""
        return self.data_dir / "uploads"


def settings_table() -> str:
    """The settings as a Markdown table (variable, default, meaning) for the README and CLI."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        default = "" if value in (None, []) else f"`{value}`"
        rows.append(f"| `XLSEARCH_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows)
