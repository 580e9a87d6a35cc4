"""The one interface every embedding backend implements, and the vector post-processing."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from search.embedders.profiles import ModelProfile
from search.errors import InvalidInput


def fit_dimension(vectors: np.ndarray, dimension: int | None) -> np.ndarray:
    """Keep the first `dimension` components (Matryoshka) and L2-normalise each row."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if dimension is not None:
        if dimension > vectors.shape[1]:
            raise InvalidInput(
                f"dimension {dimension} is larger than the model's {vectors.shape[1]}"
            )
        vectors = vectors[:, :dimension]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors, applying the model family's prompts.

    Subclasses implement `_encode` on already-formatted texts; prompts, Matryoshka
    truncation and normalisation happen here so every backend behaves the same.
    """

    name: str
    dimension: int
    max_tokens: int
    profile: ModelProfile
    # Called after every embedding call with ("query" | "document", texts, seconds).
    observer: Callable[[str, Sequence[str], float], None] | None = None

    def embed_documents(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        dimension: int | None = None,
        token_counts: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Embed passages for storage; `instruction` is a collection's document instruction.

        `token_counts`, the texts' `count_tokens` where the caller has them (chunking counted
        them), spare a backend that batches by tokens from tokenising the texts once more.
        With an `instruction` they are not used: `count_tokens` leaves it out.
        """
        if token_counts is not None and len(token_counts) != len(texts):
            raise ValueError(f"{len(token_counts)} token counts for {len(texts)} texts")
        formatted = [self.format_document(t, instruction) for t in texts]
        counts = list(token_counts) if token_counts is not None and instruction is None else None
        return self._observed(
            texts, False, lambda: self._encode_documents(formatted, dimension, counts), dimension
        )

    def embed_queries(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        dimension: int | None = None,
        bulk: bool = False,
    ) -> np.ndarray:
        """Embed search questions with the model's query prompt (and task instruction).

        `bulk` marks texts embedded as queries for a client (POST /v1/embeddings) rather than
        for a search: where the backend schedules work, they wait behind searches' queries
        like documents do, so one large request cannot hold searches up.
        """
        formatted = [self.format_query(t, instruction) for t in texts]
        encode = self._encode_bulk if bulk else self._encode
        return self._observed(
            texts, True, lambda: encode(formatted, is_query=True, dimension=dimension), dimension
        )

    def format_query(self, text: str, instruction: str | None = None) -> str:
        """The text handed to `_encode` for a query."""
        return self.profile.format_query(text, instruction)

    def format_document(self, text: str, instruction: str | None = None) -> str:
        """The text handed to `_encode` for a document."""
        return self.profile.format_document(text, instruction)

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the model is fed for `text` as a document, prompt and special tokens included."""

    @abstractmethod
    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        """Embed formatted texts; returns float32 [n, d] in input order.

        `dimension` lets a remote server truncate for us; the caller truncates regardless.
        """

    def _encode_bulk(
        self, texts: list[str], *, is_query: bool, dimension: int | None
    ) -> np.ndarray:
        """`_encode` at documents' priority; backends without priorities encode at once."""
        return self._encode(texts, is_query=is_query, dimension=dimension)

    def _encode_documents(
        self, texts: list[str], dimension: int | None, token_counts: list[int] | None
    ) -> np.ndarray:
        """`_encode` for formatted documents, with their token counts where known (None
        otherwise); backends that batch by tokens override this to use them."""
        return self._encode(texts, is_query=False, dimension=dimension)

    def _observed(
        self,
        texts: Sequence[str],
        is_query: bool,
        encode: Callable[[], np.ndarray],
        dimension: int | None,
    ) -> np.ndarray:
        """`encode()`'s vectors fitted to `dimension`, its time reported to the observer."""
        started = time.perf_counter()
        vectors = self._finish(encode(), dimension)
        if self.observer is not None and len(texts):
            self.observer("query" if is_query else "document", texts, time.perf_counter() - started)
        return vectors

    def _finish(self, vectors: np.ndarray, dimension: int | None) -> np.ndarray:
        if len(vectors) == 0:
            return np.zeros((0, dimension or self.dimension), dtype=np.float32)
        return fit_dimension(vectors, dimension)

    @property
    def runs_on_local_cpu(self) -> bool:
        """Whether embedding uses this machine's CPU cores (other work then slows it down)."""
        return True

    def close(self) -> None:
        """Release what the backend holds beyond memory (worker processes); idempotent."""
        return None

    def describe(self) -> dict[str, object]:
        """A short description of the model and how it runs, logged when a process starts."""
        return {
            "name": self.name,
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
            "profile": self.profile.name,
        }
