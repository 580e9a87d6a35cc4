"""Builds tiny sentence-transformers models offline: a random Qwen3 with a BPE tokenizer
trained on the fly, saved with last-token pooling and a query prompt."""

from __future__ import annotations

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


def build_tiny_qwen3(folder: Path, hidden_size: int = 64) -> Path:
    """Save a 2-layer randomly initialised Qwen3 embedding model as a sentence-transformers
    folder (last-token pooling, normalisation, a `query` prompt); returns the folder."""
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
        vocab_size=400,
        special_tokens=[eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(SENTENCES * 4, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", special_tokens=[(eos, tokenizer.token_to_id(eos))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=eos, pad_token=eos, model_max_length=512
    )
    base = folder / "qwen3-base"
    fast.save_pretrained(base)
    config = Qwen3Config(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=512,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen3Model(config).save_pretrained(base)
    transformer = Transformer(str(base), max_seq_length=256)
    model = SentenceTransformer(
        modules=[transformer, Pooling(hidden_size, pooling_mode="lasttoken"), Normalize()],
        prompts={"query": QUERY_PROMPT, "document": ""},
    )
    target = folder / "tiny-qwen3-embedding"
    model.save(str(target))
    return target
