"""Optional API keys: every write needs `Authorization: Bearer <key>` when keys are set;
reads too unless `open_reads`. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac

from fastapi import Request

from search.errors import Unauthorized


def _check(request: Request, needed: bool) -> None:
    keys: list[bytes] = request.app.state.api_keys
    if not keys or not needed:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode()
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given, k) for k in keys):
        raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>'")


async def require_write(request: Request) -> None:
    """Dependency for routes that change what is stored (async: it never blocks)."""
    _check(request, needed=True)


def may_read(request: Request) -> bool:
    """Whether this request may see what the server holds (a route open to everyone, such
    as /ready, shows collection names only then)."""
    try:
        _check(request, needed=not request.app.state.open_reads)
    except Unauthorized:
        return False
    return True


async def require_read(request: Request) -> None:
    """Dependency for routes that only read (async: it never blocks)."""
    _check(request, needed=not request.app.state.open_reads)


async def require_embeddings(request: Request) -> None:
    """Dependency for POST /v1/embeddings: it spends the model's time on anything a client
    sends, so `open_embeddings=false` needs a key for it even while reads are open."""
    state = request.app.state
    _check(request, needed=not (state.open_reads and state.open_embeddings))
