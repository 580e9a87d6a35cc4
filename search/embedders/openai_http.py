"""Embedding through any OpenAI-compatible `/v1/embeddings` server (SGLang, vLLM, TEI)."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import httpx
import numpy as np

from search.embedders.base import Embedder
from search.embedders.profiles import resolve_profile
from search.errors import EmbedderUnavailable

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIEmbedder(Embedder):
    """Sends formatted texts in batches; retries transient failures with exponential backoff.

    The server only sees text, so query prompts (Qwen3's `Instruct: …`) are applied here.
    Tokens are counted with a local tokenizer when one is found, else estimated from bytes.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        profile: str = "auto",
        timeout_s: float = 60.0,
        max_retries: int = 4,
        batch_size: int = 64,
        max_tokens: int | None = None,
        tokenizer: str | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )
        self._base_url = base_url
        self._max_retries = max_retries
        self._batch_size = batch_size
        self._backoff_s = backoff_s
        self.name = model
        self.profile = resolve_profile(profile, model)
        self._tokenizer = _load_local_tokenizer(tokenizer or model)
        self.max_tokens = max_tokens or (32768 if self.profile.name == "qwen3" else 512)
        self.dimension = int(self._request(["dimension probe"], None).shape[1])

    @property
    def runs_on_local_cpu(self) -> bool:
        return False  # the server embeds; this process only waits for it

    def close(self) -> None:
        self._client.close()

    def count_tokens(self, text: str) -> int:
        formatted = self.format_document(text)
        if self._tokenizer is not None:
            return len(self._tokenizer(formatted)["input_ids"])
        # No tokenizer: a safe over-estimate (about one token per two UTF-8 bytes).
        return len(formatted.encode("utf-8")) // 2 + 2

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        parts = [
            self._request(texts[i : i + self._batch_size], dimension)
            for i in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def _request(self, texts: list[str], dimension: int | None) -> np.ndarray:
        body: dict[str, Any] = {"model": self.name, "input": texts, "encoding_format": "base64"}
        if dimension is not None:
            body["dimensions"] = dimension
        for attempt in range(self._max_retries + 1):
            last_try = attempt == self._max_retries
            try:
                response = self._client.post("/embeddings", json=body)
            except httpx.TransportError as exc:
                if last_try:
                    raise EmbedderUnavailable(
                        f"cannot reach the embedding server at {self._base_url} ({exc}); "
                        "check XLSEARCH_OPENAI_BASE_URL and that the server is running"
                    ) from exc
            else:
                if response.status_code == 200:
                    return _decode(response.json(), len(texts))
                if response.status_code not in RETRYABLE_STATUS or last_try:
                    raise EmbedderUnavailable(
                        f"the embedding server at {self._base_url} answered "
                        f"{response.status_code}: {response.text[:300]}"
                    )
            delay = self._backoff_s * 2**attempt
            log.warning(
                "embedding request failed (attempt %d), retrying in %.1fs", attempt + 1, delay
            )
            time.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises


def _decode(payload: dict[str, Any], expected: int) -> np.ndarray:
    """Read float or base64 embeddings from an OpenAI-style response, in input order."""
    items = sorted(payload.get("data", []), key=lambda item: item.get("index", 0))
    if len(items) != expected:
        raise EmbedderUnavailable(
            f"the embedding server returned {len(items)} vectors for {expected} inputs"
        )
    rows = []
    for item in items:
        embedding = item["embedding"]
        if isinstance(embedding, str):
            rows.append(np.frombuffer(base64.b64decode(embedding), dtype="<f4"))
        else:
            rows.append(np.asarray(embedding, dtype=np.float32))
    return np.vstack(rows).astype(np.float32)


def _load_local_tokenizer(name: str) -> Any:
    """The model's tokenizer if it is on disk or in the local cache; no downloads."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "count tokens approximately"
        log.warning("no local tokenizer for %s; token counts are estimated", name)
        return None
