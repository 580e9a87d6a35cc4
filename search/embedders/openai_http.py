"""Embedding through any OpenAI-compatible `/v1/embeddings` server (SGLang, vLLM, TEI)."""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from typing import Any, Literal

import httpx
import numpy as np

from search.embedders.base import Embedder
from search.embedders.profiles import resolve_profile
from search.errors import EmbedderUnavailable

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

# How Matryoshka dimensions reach a served model: `send` asks the server for them,
# `truncate` cuts full vectors here, `auto` sends until the server refuses the field.
DimensionsMode = Literal["auto", "send", "truncate"]

# vLLM answers 400 "Model ... does not support matryoshka representation ..." (or, in older
# releases, "dimensions is currently not supported"); SGLang says much the same.
_REFUSES_DIMENSIONS = re.compile(r"dimension|matryoshka", re.IGNORECASE)


class OpenAIEmbedder(Embedder):
    """Sends formatted texts in batches; retries transient failures with exponential backoff.

    The server only sees text, so query prompts (Qwen3's `Instruct: …`) are applied here.
    Tokens are counted with a local tokenizer when one is found, else estimated from bytes.
    A Matryoshka dimension is asked of the server or cut here, per `dimensions`.
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
        dimensions: DimensionsMode = "auto",
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )
        self._base_url = base_url
        self._max_retries = max_retries
        self._batch_size = batch_size
        self._backoff_s = backoff_s
        self._dimensions_mode = dimensions
        # Whether `dimensions` goes to the server; `auto` turns it off for good on a refusal.
        self._server_truncates = dimensions != "truncate"
        self._fallback_lock = threading.Lock()
        self.name = model
        self.profile = resolve_profile(profile, model)
        self._tokenizer = _load_local_tokenizer(tokenizer or model)
        self.max_tokens = max_tokens or (32768 if self.profile.name == "qwen3" else 512)
        self.dimension = int(self._vectors(self._post(["dimension probe"], None), 1).shape[1])

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
            self._embed_batch(texts[i : i + self._batch_size], dimension)
            for i in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def _embed_batch(self, texts: list[str], dimension: int | None) -> np.ndarray:
        """Vectors with at least `dimension` components; the caller truncates and normalises."""
        asked = dimension if self._asks_server(dimension) else None
        response = self._post(texts, asked)
        if asked is not None and self._dimensions_mode == "auto" and _refuses_dimensions(response):
            self._truncate_from_now_on(response)
            asked = None
            response = self._post(texts, None)
        vectors = self._vectors(response, len(texts))
        low = asked or self.dimension
        if not low <= vectors.shape[1] <= self.dimension:
            expected = f"{low}" if low == self.dimension else f"{low} to {self.dimension}"
            raise EmbedderUnavailable(
                f"the embedding server at {self._base_url} returned {vectors.shape[1]}-dimensional "
                f"vectors where {expected} were expected; check that it serves {self.name} "
                "(restart xlsearch if the served model changed)"
            )
        return vectors

    def _asks_server(self, dimension: int | None) -> bool:
        """Whether to send `dimensions`: only for a real cut, and while the server takes it."""
        return dimension is not None and dimension < self.dimension and self._server_truncates

    def _truncate_from_now_on(self, refusal: httpx.Response) -> None:
        with self._fallback_lock:
            if not self._server_truncates:
                return  # another thread saw the refusal first and warned
            self._server_truncates = False
        log.warning(
            "the embedding server at %s refuses `dimensions` (%s); full vectors are truncated "
            "here from now on (XLSEARCH_OPENAI_DIMENSIONS=truncate skips the first try)",
            self._base_url,
            refusal.text[:200],
        )

    def _post(self, texts: list[str], dimension: int | None) -> httpx.Response:
        """The server's answer to one batch: a success, a client error, or the last failure."""
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
                if response.status_code not in RETRYABLE_STATUS or last_try:
                    return response
            delay = self._backoff_s * 2**attempt
            log.warning(
                "embedding request failed (attempt %d), retrying in %.1fs", attempt + 1, delay
            )
            time.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _vectors(self, response: httpx.Response, expected: int) -> np.ndarray:
        """The [expected, d] float32 vectors of a 200 answer; anything else is a clear error."""
        if response.status_code != 200:
            hint = ""
            if _refuses_dimensions(response):
                hint = (
                    "; the server does not take `dimensions` for this model: set "
                    "XLSEARCH_OPENAI_DIMENSIONS=truncate (or auto) to cut full vectors here, "
                    "or flag the model as Matryoshka on the server"
                )
            raise EmbedderUnavailable(
                f"the embedding server at {self._base_url} answered "
                f"{response.status_code}: {response.text[:300]}{hint}"
            )
        try:
            return _decode(response.json(), expected)
        except ValueError as exc:  # JSONDecodeError and malformed vectors alike
            raise EmbedderUnavailable(
                f"the embedding server at {self._base_url} sent an unusable answer ({exc}); "
                "it must follow the OpenAI /v1/embeddings response format"
            ) from exc


def _refuses_dimensions(response: httpx.Response) -> bool:
    return response.status_code in (400, 422) and bool(_REFUSES_DIMENSIONS.search(response.text))


def _decode(payload: Any, expected: int) -> np.ndarray:
    """Float-list or base64 embeddings (whichever the server sends), in input order.

    Raises ValueError when the answer is not `expected` finite vectors of one width.
    """
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError("no list of embedding objects under 'data'")
    if len(items) != expected:
        raise ValueError(f"{len(items)} vectors for {expected} inputs")
    indices = [item.get("index", position) for position, item in enumerate(items)]
    if any(type(i) is not int for i in indices) or sorted(indices) != list(range(expected)):
        raise ValueError(f"the indices {indices[:8]} are not 0..{expected - 1}")
    by_index = dict(zip(indices, items, strict=True))
    rows = [_embedding(by_index[i].get("embedding")) for i in range(expected)]
    widths = {len(row) for row in rows}
    if len(widths) != 1 or 0 in widths:
        raise ValueError(f"vectors of widths {sorted(widths)} instead of one non-zero width")
    vectors = np.vstack(rows)
    if not np.isfinite(vectors).all():
        raise ValueError("vectors with NaN or infinite components")
    return vectors


def _embedding(value: Any) -> np.ndarray:
    """One vector from a base64 string of little-endian float32, or a list of numbers."""
    if isinstance(value, str):
        raw = base64.b64decode(value, validate=True)  # binascii.Error is a ValueError
        if len(raw) % 4:
            raise ValueError(f"a base64 embedding of {len(raw)} bytes, not whole float32s")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        return np.asarray(value, dtype=np.float32)
    raise ValueError(f"an embedding that is neither base64 nor a list of numbers: {value!r:.60}")


def _load_local_tokenizer(name: str) -> Any:
    """The model's tokenizer if it is on disk or in the local cache; no downloads."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "count tokens approximately"
        log.warning("no local tokenizer for %s; token counts are estimated", name)
        return None
