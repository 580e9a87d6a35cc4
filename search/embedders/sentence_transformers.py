"""In-process embedding with sentence-transformers: any local folder or hub id, CPU or GPU."""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from search.embedders.base import Embedder
from search.embedders.batching import plan_batches
from search.embedders.profiles import resolve_profile

log = logging.getLogger(__name__)


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


def resolve_attention(requested: str, device: str, dtype: Any) -> str | None:
    """FlashAttention-2 on a GPU in half precision when `flash_attn` is installed; otherwise
    transformers' own choice (SDPA for the models that support it). None = let it choose."""
    import torch

    if requested != "auto":
        return requested
    half = dtype in (torch.float16, torch.bfloat16)
    if device.startswith("cuda") and half and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return None


def _config_model_type(model: str) -> str | None:
    config = Path(model) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    return None


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model with its family's prompts, batched by token budget.

    The forward loop is the product's own rather than `SentenceTransformer.encode`: each
    batch is copied to the GPU from pinned memory without waiting, and the vectors stay on the
    device until one copy back at the end of the call, so this loop adds no synchronisation of
    its own (the attention masks of transformers still sync once per batch). Requests and the
    worker share one model from several threads; tokenising is serialised because a tokenizer
    keeps its padding and truncation as state that every call sets.

    With `pool_devices`, document calls of more than one batch are spread over
    sentence-transformers' multi-process pool (one process per device), one call at a time: a
    call that finds the pool busy, and every call after a pool failure, runs in this process.
    Queries always run here, on `device`.
    """

    def __init__(
        self,
        model: str,
        *,
        profile: str = "auto",
        device: str = "auto",
        dtype: str = "auto",
        attention: str = "auto",
        batch_tokens: int = 16384,
        max_batch_size: int = 64,
        threads: int | None = None,
        pool_devices: list[str] | None = None,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self._dtype = resolve_dtype(dtype, self.device)
        self._attention = resolve_attention(attention, self.device, self._dtype)
        self.profile = resolve_profile(profile, model, _config_model_type(model))
        self._model = self._load(model, self.device)
        self._model.eval()
        self._tokenizer = self._model.tokenizer
        self._tokenizer_lock = threading.Lock()
        # Chunking counts tokens in another thread while batches are tokenised for the model.
        # A fast tokenizer keeps its padding and truncation as state that every call sets, so a
        # shared one lets a count switch padding off under a batch ("Unable to create tensor").
        self._counting_tokenizer = copy.deepcopy(self._tokenizer)
        self._saved_prompts = {
            k: v for k, v in (self._model.prompts or {}).items() if v is not None
        }
        self._batch_tokens = batch_tokens
        self._max_batch_size = max_batch_size
        self._pinned = self.device.startswith("cuda")
        # Queries run on a high-priority CUDA stream: the GPU schedules their kernels ahead of
        # a long document batch already queued on the default stream.
        self._query_stream = (
            torch.cuda.Stream(device=self.device, priority=-1) if self._pinned else None
        )
        # A local folder is named by its last two parts (e.g. "models/Qwen3-Embedding-4B"),
        # which survive moving the folder; a hub id is its own name.
        local = Path(model)
        self.name = "/".join(local.resolve().parts[-2:]) if local.exists() else model
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or self._tokenizer.model_max_length)
        self._pool: Any = None  # sentence-transformers' pool: queues and processes
        self._pool_lock = threading.Lock()  # its queues serve one call at a time
        self._pool_devices = pool_devices if pool_devices and len(pool_devices) > 1 else []
        if self._pool_devices:
            # The pool's processes receive a CPU copy (sentence-transformers moves the model it
            # starts from to the CPU), so this process keeps its own model on `device`.
            self._pool = self._load(model, "cpu").start_multi_process_pool(self._pool_devices)
            log.info("Embedding documents on %s", ", ".join(self._pool_devices))

    def _load(self, model: str, device: str) -> Any:
        from sentence_transformers import SentenceTransformer

        model_kwargs: dict[str, Any] = {"dtype": self._dtype}
        if self._attention is not None:
            model_kwargs["attn_implementation"] = self._attention
        loaded = SentenceTransformer(model, device=device, model_kwargs=model_kwargs)
        loaded.tokenizer.padding_side = self.profile.padding_side
        return loaded

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
        return len(self._counting_tokenizer(self.format_document(text))["input_ids"])

    @property
    def runs_on_local_cpu(self) -> bool:
        return any(device.startswith("cpu") for device in [self.device, *self._pool_devices])

    def describe(self) -> dict[str, object]:
        transformer = getattr(self._model[0], "auto_model", None)
        attention = getattr(getattr(transformer, "config", None), "_attn_implementation", None)
        return {
            **super().describe(),
            "device": self.device,
            "dtype": str(self._dtype).removeprefix("torch."),
            "attention": attention,
        }

    def close(self) -> None:
        if self._pool is not None:
            from sentence_transformers import SentenceTransformer

            SentenceTransformer.stop_multi_process_pool(self._pool)
            self._pool = None

    def _token_lengths(self, texts: list[str]) -> list[int]:
        with self._tokenizer_lock:
            encoded = self._tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [min(len(ids), self.max_tokens) for ids in encoded]

    def _tokenize(self, texts: list[str]) -> dict[str, Any]:
        """Padded model inputs for one batch (on the CPU)."""
        with self._tokenizer_lock:
            return dict(self._model.preprocess(texts))

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        return self._encode_by_lengths(texts, self._token_lengths(texts), is_query)

    def _encode_documents(
        self, texts: list[str], dimension: int | None, token_counts: list[int] | None
    ) -> np.ndarray:
        if token_counts is None:
            return self._encode(texts, is_query=False, dimension=dimension)
        lengths = [min(count, self.max_tokens) for count in token_counts]
        return self._encode_by_lengths(texts, lengths, is_query=False)

    def _encode_by_lengths(
        self, texts: list[str], lengths: list[int], is_query: bool
    ) -> np.ndarray:
        """Embed texts whose token counts are `lengths`, in batches planned by them."""
        batches = plan_batches(lengths, self._batch_tokens, self._max_batch_size)
        if self._pool is not None and not is_query and len(batches) > 1:
            pooled = self._encode_on_pool(texts, lengths)
            if pooled is not None:
                return pooled
        return self._forward(texts, batches, self._query_stream if is_query else None)

    def plan(self, texts: list[str]) -> list[list[int]]:
        """The batches (indices into `texts`) that embedding `texts` would run."""
        return plan_batches(self._token_lengths(texts), self._batch_tokens, self._max_batch_size)

    @property
    def model(self) -> Any:
        """The loaded `SentenceTransformer` (for benchmarks that time its bare forward pass)."""
        return self._model

    def to_device(self, features: dict[str, Any]) -> dict[str, Any]:
        """Model inputs on the model's device: from pinned memory without waiting, on a GPU."""
        return {key: self._to_device(value) for key, value in features.items()}

    def _forward(
        self, texts: list[str], batches: list[list[int]], stream: Any = None
    ) -> np.ndarray:
        """Embed `texts` batch by batch (indices from `plan`) on `stream` (None: the default
        one); the vectors come back in one copy at the end."""
        import torch

        outputs = []
        with torch.inference_mode(), torch.cuda.stream(stream):
            for batch in batches:
                features = self.to_device(self._tokenize([texts[i] for i in batch]))
                outputs.append(self._model(features)["sentence_embedding"])
            if not outputs:
                return np.zeros((0, self.dimension), dtype=np.float32)
            stacked = torch.cat(outputs).to(torch.float32).cpu().numpy()
        out = np.empty_like(stacked)
        out[[i for batch in batches for i in batch]] = stacked
        return out

    def _to_device(self, value: Any) -> Any:
        import torch

        if not isinstance(value, torch.Tensor):
            return value
        if self._pinned:
            return value.pin_memory().to(self.device, non_blocking=True)
        return value.to(self.device)

    def _encode_on_pool(self, texts: list[str], lengths: list[int]) -> np.ndarray | None:
        """Spread a document call over the pool; a batch holds as many texts as fit the token
        budget at the call's longest text (the pool batches by count, not by tokens).

        None when the pool is busy with another call, or has just failed: its queues may then
        hold a dead call's results, so it is shut down and this process embeds from now on.
        """
        if not self._pool_lock.acquire(blocking=False):
            return None
        try:
            batch_size = max(1, min(self._max_batch_size, self._batch_tokens // max(lengths)))
            chunk_size = max(batch_size, math.ceil(len(texts) / len(self._pool_devices) / 4))
            vectors = self._model.encode(
                texts,
                pool=self._pool,
                batch_size=batch_size,
                chunk_size=chunk_size,
                convert_to_numpy=True,
                show_progress_bar=False,
                prompt="",  # prompts were applied by format_query/format_document
            )
            return np.asarray(vectors, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - any pool failure: carry on without it
            log.error("the embedding pool failed (%s); documents are embedded here from now", exc)
            self.close()
            return None
        finally:
            self._pool_lock.release()
