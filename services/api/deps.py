"""The query API's dependencies: the pool, the settings, the caller, and the filters and keyset
paging every list endpoint shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from services.api import store
from services.api.pagination import InvalidCursor
from services.core.http import CurrentUser
from services.core.publisher import TransactionPublisher
from services.core.settings import Settings

__all__ = [
    "CurrentUser",
    "PageQuery",
    "PoolDep",
    "PublisherDep",
    "SettingsDep",
    "parameter_error",
]


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
PublisherDep = Annotated[TransactionPublisher, Depends(get_publisher)]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]


def parameter_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


def body_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", name), "msg": message, "type": "value_error"}])


async def check_category(pool: asyncpg.Pool, user_id: str, category: str | None) -> None:
    """A category filter must name one of the caller's categories; a typo should not look like
    an empty result."""
    if category is None:
        return
    known = await store.user_categories(pool, user_id)
    if category not in known:
        hint = f"; yours are: {', '.join(sorted(known)[:20])}" if known else ""
        raise parameter_error("category", f"unknown category {category!r}{hint}")


@dataclass
class FilterQuery:
    """The filters every list of transactions shares: the lists, and the exports."""

    account_id: Annotated[str | None, Query(max_length=64)] = None
    category: Annotated[str | None, Query(max_length=64)] = None
    since: Annotated[AwareDatetime | None, Query(description="Inclusive, ISO 8601")] = None
    until: Annotated[AwareDatetime | None, Query(description="Exclusive, ISO 8601")] = None
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None

    async def filter(
        self, pool: asyncpg.Pool, user_id: str, after: tuple[Any, str] | None = None
    ) -> store.ListFilter:
        if self.since and self.until and self.since >= self.until:
            raise parameter_error("until", "until must be later than since")
        await check_category(pool, user_id, self.category)
        return store.ListFilter(
            self.account_id, self.category, self.since, self.until, self.min_score, after
        )


@dataclass
class PageQuery(FilterQuery):
    """The filters, and keyset paging."""

    limit: Annotated[int, Query(ge=1, le=500)] = 50
    cursor: Annotated[str | None, Query(max_length=512)] = None

    async def page_filter(
        self, pool: asyncpg.Pool, user_id: str, decode: Callable[[str], tuple[Any, str]]
    ) -> store.ListFilter:
        try:
            after = decode(self.cursor) if self.cursor else None
        except InvalidCursor as exc:
            raise parameter_error("cursor", str(exc)) from None
        return await self.filter(pool, user_id, after)


PageDep = Annotated[PageQuery, Depends()]
FilterDep = Annotated[FilterQuery, Depends()]
