"""Dependencies: the store opened by the app's lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from storage import BaseStore


def get_store(request: Request) -> BaseStore:
    return request.app.state.store


StoreDep = Annotated[BaseStore, Depends(get_store)]
