"""OpenAI-compatible embeddings, so existing clients (and the seed's) work unchanged."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends

from search.api.deps import EngineDep
from search.api.models import EmbeddingItem, EmbeddingsIn, EmbeddingsOut, Usage, error_responses
from search.api.security import require_read
from search.errors import InvalidInput

router = APIRouter(tags=["embeddings"], dependencies=[Depends(require_read)])
MAX_INPUTS = 2048


@router.post("/v1/embeddings", operation_id="create_embeddings", responses=error_responses(422))
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
    embed = embedder.embed_queries if body.input_type == "query" else embedder.embed_documents
    vectors = embed(texts, instruction=body.instruction, dimension=dimension)
    tokens = sum(embedder.count_tokens(text) for text in texts)
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
