"""Liveness, readiness, metrics and the served model."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from search.api.deps import EngineDep
from search.api.models import ModelCard, ModelList
from search.api.security import may_read, require_read

router = APIRouter()


@router.get("/health", operation_id="health", tags=["ops"])
def health() -> dict[str, str]:
    """200 while the process lives."""
    return {"status": "ok"}


@router.get("/ready", operation_id="ready", tags=["ops"], responses={503: {}})
def ready(request: Request) -> JSONResponse:
    """200 once the model is loaded and the indexes have caught up, else 503; says the
    model this process embeds with and (to a client that may read) which generation of
    each collection it searches."""
    if request.app.state.keeper.ready.is_set():
        engine = request.app.state.engine
        body: dict[str, object] = {"status": "ready", "model": engine.embedder.name}
        if may_read(request):
            body["generations"] = engine.indexes.searched()
        return JSONResponse(body)
    return JSONResponse({"status": "starting"}, status_code=503)


@router.get(
    "/metrics",
    operation_id="metrics",
    tags=["ops"],
    response_class=Response,
    dependencies=[Depends(require_read)],
)
def metrics(request: Request) -> Response:
    """Prometheus text format (it names collections and their sizes, so it needs a key when
    reads do)."""
    return request.app.state.metrics.render()  # type: ignore[no-any-return]


@router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_read)])
async def openapi_schema(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False, dependencies=[Depends(require_read)])
async def openapi_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="xlsearch API")


@router.get(
    "/v1/models",
    operation_id="list_models",
    tags=["embeddings"],
    dependencies=[Depends(require_read)],
)
def models(engine: EngineDep) -> ModelList:
    """The model this server embeds with (OpenAI-compatible)."""
    return ModelList(data=[ModelCard(id=engine.embedder.name)])
