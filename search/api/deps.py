"""What route functions receive: the process's engine and job store, as annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from search.engine import Engine
from search.store.jobs import JobStore


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _jobs(request: Request) -> JobStore:
    return JobStore(_engine(request).store)


EngineDep = Annotated[Engine, Depends(_engine)]
JobsDep = Annotated[JobStore, Depends(_jobs)]
