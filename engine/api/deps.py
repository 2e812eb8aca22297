"""FastAPI dependencies: the app's store, settings and limits live on app.state (set by create_app)."""

from __future__ import annotations

from fastapi import Request

from engine.config import ApiSettings, Settings
from engine.store import GraphStore


def get_store(request: Request) -> GraphStore:
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_options(request: Request) -> ApiSettings:
    return request.app.state.options
