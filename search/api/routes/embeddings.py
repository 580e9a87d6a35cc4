"""OpenAI-compatible embeddings, so existing clients (and the seed's) work unchanged."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends

from search.api.deps import EngineDep, require_json
from search.api.models import EmbeddingItem, EmbeddingsIn, EmbeddingsOut, Usage, error_responses
from search.api.security import require_embeddings
from search.engine import Engine
from search.errors import InvalidInput, RequestTooLarge

router = APIRouter(tags=["embeddings"], dependencies=[Depends(require_embeddings)])
MAX_INPUTS = 2048


@router.post(
    "/v1/embeddings",
    operation_id="create_embeddings",
    dependencies=[Depends(require_json)],
    responses=error_responses(401, 413, 415, 422),
)
def create_embeddings(body: EmbeddingsIn, engine: EngineDep) -> EmbeddingsOut:
    """`input_type` picks the query or document prompt (documents by default, as a raw
    OpenAI client expects); `dimensions` (or `dim`) truncates Matryoshka-style."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS:
        raise InvalidInput(f"input must hold 1 to {MAX_INPUTS} texts")
    if any(not text.strip() for text in texts):
        raise InvalidInput("input texts must not be empty")
    embedder = engine.embedder
    dimension = body.dimensions or body.dim
    if dimension is not None and not 32 <= dimension <= embedder.dimension:
        raise InvalidInput(f"dimensions must be between 32 and {embedder.dimension}")
    tokens = _count_tokens(engine, texts)
    if body.input_type == "query":  # behind searches' queries, never ahead of them
        vectors = embedder.embed_queries(
            texts, instruction=body.instruction, dimension=dimension, bulk=True
        )
    else:
        vectors = embedder.embed_documents(texts, instruction=body.instruction, dimension=dimension)
    data = [
        EmbeddingItem(
            index=i,
            embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]
    return EmbeddingsOut(
        data=data, model=embedder.name, usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
    )


def _count_tokens(engine: Engine, texts: list[str]) -> int:
    """The request's tokens, refused once over `max_embedding_tokens` (counting stops there,
    so a huge request costs no more than the limit)."""
    limit = engine.settings.max_embedding_tokens
    total = 0
    for text in texts:
        if len(text) > 32 * limit:  # far more characters than any tokenizer packs per token
            total = limit + 1
        else:
            total += engine.embedder.count_tokens(text)
        if total > limit:
            raise RequestTooLarge(
                f"the input holds more than {limit} tokens (XLSEARCH_MAX_EMBEDDING_TOKENS); "
                "send fewer or shorter texts per request"
            )
    return total
