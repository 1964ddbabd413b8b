"""Ingest's dependencies: the pool, the settings, the publisher and the caller."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.core.http import CurrentUser
from services.core.publisher import TransactionPublisher
from services.core.settings import Settings

__all__ = ["CurrentUser", "PoolDep", "PublisherDep", "SettingsDep"]


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_settings_of_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_publisher(request: Request) -> TransactionPublisher:
    publisher: TransactionPublisher = request.app.state.publisher
    return publisher


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]
PublisherDep = Annotated[TransactionPublisher, Depends(get_publisher)]
