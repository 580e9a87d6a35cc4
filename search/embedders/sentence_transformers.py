"""In-process embedding with sentence-transformers: any local folder or hub id, CPU or GPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from search.embedders.base import Embedder
from search.embedders.batching import plan_batches
from search.embedders.profiles import resolve_profile


def resolve_device(requested: str) -> str:
    """`auto` means the first CUDA device when there is one, else the CPU."""
    import torch

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(requested: str, device: str) -> Any:
    """bf16 on GPUs that have it (fp16 on older ones), fp32 on the CPU, unless set."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _config_model_type(model: str) -> str | None:
    config = Path(model) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    return None


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model with its family's prompts, batched by token budget."""

    def __init__(
        self,
        model: str,
        *,
        profile: str = "auto",
        device: str = "auto",
        dtype: str = "auto",
        batch_tokens: int = 16384,
        max_batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self._model = SentenceTransformer(
            model,
            device=self.device,
            model_kwargs={"dtype": resolve_dtype(dtype, self.device)},
        )
        self.profile = resolve_profile(profile, model, _config_model_type(model))
        self._tokenizer = self._model.tokenizer
        self._tokenizer.padding_side = self.profile.padding_side
        self._saved_prompts = {
            k: v for k, v in (self._model.prompts or {}).items() if v is not None
        }
        self._batch_tokens = batch_tokens
        self._max_batch_size = max_batch_size
        # A local folder is named by its last two parts (e.g. "models/Qwen3-Embedding-4B"),
        # which survive moving the folder; a hub id is its own name.
        local = Path(model)
        self.name = "/".join(local.resolve().parts[-2:]) if local.exists() else model
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or self._tokenizer.model_max_length)

    def format_query(self, text: str, instruction: str | None = None) -> str:
        """An explicit task uses the profile's template; else the model's saved query prompt."""
        if instruction is None and "query" in self._saved_prompts:
            return self._saved_prompts["query"] + text
        return self.profile.format_query(text, instruction)

    def format_document(self, text: str, instruction: str | None = None) -> str:
        if instruction is None:
            saved = self._saved_prompts.get("document", self._saved_prompts.get("passage"))
            if saved is not None:
                return saved + text
        return self.profile.format_document(text, instruction)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(self.format_document(text))["input_ids"])

    def _token_lengths(self, texts: list[str]) -> list[int]:
        encoded = self._tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [min(len(ids), self.max_tokens) for ids in encoded]

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        lengths = self._token_lengths(texts)
        for batch in plan_batches(lengths, self._batch_tokens, self._max_batch_size):
            vectors = self._model.encode(
                [texts[i] for i in batch],
                batch_size=len(batch),
                convert_to_numpy=True,
                show_progress_bar=False,
                prompt="",  # prompts were applied by format_query/format_document
            )
            out[batch] = np.asarray(vectors, dtype=np.float32)
        return out
