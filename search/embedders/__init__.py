"""Embedding backends behind one interface; `load_embedder` picks one from the settings."""

from __future__ import annotations

from search.embedders.base import Embedder, fit_dimension
from search.settings import Settings

__all__ = ["Embedder", "fit_dimension", "load_embedder"]


def load_embedder(settings: Settings) -> Embedder:
    """Build the embedder the settings ask for (heavy imports happen only for that backend)."""
    if settings.embedder == "bundled":
        from search.embedders.bundled import BundledEmbedder

        return BundledEmbedder(threads=settings.threads)
    if not settings.model:
        raise ValueError(
            f"XLSEARCH_MODEL is required with XLSEARCH_EMBEDDER={settings.embedder} "
            "(a model path or hub id, or the server's model name)"
        )
    if settings.embedder == "sentence-transformers":
        from search.embedders.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(
            settings.model,
            profile=settings.model_profile,
            device=settings.device,
            dtype=settings.dtype,
            attention=settings.attention,
            batch_tokens=settings.batch_tokens,
            max_batch_size=settings.max_batch_size,
            threads=settings.threads,
            pool_devices=settings.devices if settings.multi_device == "pool" else None,
        )
    from search.embedders.openai_http import OpenAIEmbedder

    return OpenAIEmbedder(
        settings.openai_base_url,
        settings.model,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        profile=settings.model_profile,
        timeout_s=settings.openai_timeout_s,
        max_retries=settings.openai_max_retries,
        batch_size=settings.max_batch_size,
        max_tokens=settings.model_max_tokens,
        tokenizer=settings.tokenizer,
        dimensions=settings.openai_dimensions,
    )
