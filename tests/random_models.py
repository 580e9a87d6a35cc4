"""Builds randomly initialised Qwen3 embedding models offline, as sentence-transformers
folders (last-token pooling, normalisation, a `query` prompt) with a byte-level BPE tokenizer
trained on the fly. Random weights cost the same compute as trained ones, so a model with a
real model's shape serves speed and memory measurements (`bench/gpu.py`); a tiny one serves
the tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SENTENCES = [
    "The Eiffel Tower is in Paris.",
    "Der Eiffelturm steht in Paris und ist 330 Meter hoch.",
    "La tour Eiffel mesure 330 mètres.",
    "Mount Fuji is the highest mountain in Japan.",
    "富士山は日本で一番高い山です。",
    "Coffee comes from Ethiopia.",
    "Instruct: Find the passage that answers the question\nQuery:",
]
QUERY_PROMPT = "Instruct: Find the passage that answers the question\nQuery:"


@dataclass(frozen=True)
class Qwen3Shape:
    """The sizes that decide a Qwen3 model's compute and memory."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    max_positions: int = 32768


# The published configurations of the Qwen3-Embedding models, and a tiny one for tests.
SHAPES = {
    "tiny": Qwen3Shape(2, 64, 128, 4, 2, 16, 0, 512),
    "qwen3-0.6b": Qwen3Shape(28, 1024, 3072, 16, 8, 128, 151669),
    "qwen3-4b": Qwen3Shape(36, 2560, 9728, 32, 8, 128, 151665),
    "qwen3-8b": Qwen3Shape(36, 4096, 12288, 32, 8, 128, 151665),
}


def build_random_qwen3(
    folder: Path,
    shape: Qwen3Shape,
    *,
    texts: Sequence[str] = SENTENCES,
    device: str = "cpu",
    dtype: str = "float32",
    max_seq_length: int = 256,
    tokenizer_vocab: int = 400,
) -> Path:
    """Save a random Qwen3 with `shape` as a sentence-transformers folder; returns it.

    The weights are made on `device` in `dtype` (a 4B model is made in seconds on a GPU). A
    `shape.vocab` of 0 means the tokenizer's own size; a larger one only adds unused rows.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    eos = "<|endoftext|>"
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=tokenizer_vocab,
        special_tokens=[eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(texts) * 4, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", special_tokens=[(eos, tokenizer.token_to_id(eos))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=eos, pad_token=eos, model_max_length=max_seq_length
    )
    base = folder / "qwen3-base"
    fast.save_pretrained(base)
    config = Qwen3Config(
        vocab_size=max(shape.vocab, len(fast)),
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=max(shape.max_positions, max_seq_length),
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            Qwen3Model(config).save_pretrained(base)
    finally:
        torch.set_default_dtype(default_dtype)
    # Loaded back in `dtype`, so the folder saved below holds the weights once, at that size.
    transformer = Transformer(
        str(base), max_seq_length=max_seq_length, model_kwargs={"dtype": getattr(torch, dtype)}
    )
    model = SentenceTransformer(
        modules=[transformer, Pooling(shape.hidden, pooling_mode="lasttoken"), Normalize()],
        prompts={"query": QUERY_PROMPT, "document": ""},
    )
    target = folder / "random-qwen3-embedding"
    model.save(str(target))
    return target


def build_tiny_qwen3(folder: Path) -> Path:
    """The tests' 2-layer, 64-wide random Qwen3 embedding model."""
    return build_random_qwen3(folder, SHAPES["tiny"])
