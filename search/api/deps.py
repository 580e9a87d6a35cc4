"""What route functions receive: the process's engine and job store, as annotated aliases.

Dependencies that do not block are `async def`: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from search.engine import Engine
from search.store.jobs import JobStore


async def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _jobs(request: Request) -> JobStore:
    return JobStore(request.app.state.engine.store)


EngineDep = Annotated[Engine, Depends(_engine)]
JobsDep = Annotated[JobStore, Depends(_jobs)]
