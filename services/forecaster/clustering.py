"""Clusters each user's merchant and category texts, now and then, for the clusters endpoint."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.analytics.embeddings import Embedder
from services.analytics.semantic import TextSpace, cluster
from services.core.db import Lock, advisory_lock
from services.core.settings import Settings
from services.core.tasks import repeat
from services.forecaster import store

log = logging.getLogger(__name__)

MIN_TEXTS = 3


class ClusterRefresher:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, settings: Settings):
        self.pool = pool
        self.embedder = embedder
        self.settings = settings

    async def refresh(self) -> int:
        """Re-cluster users with transactions stored since the last round (of any forecaster,
        before any restart); return how many were clustered."""
        async with advisory_lock(self.pool, Lock.CLUSTERING) as conn:
            if conn is None:
                return 0
            after = await store.cluster_progress(self.pool)
            users, last = await store.users_changed_since(self.pool, after)
            done = 0
            for user in users:
                done += await self.refresh_user(user)
            await store.set_cluster_progress(self.pool, last)
            return done

    async def refresh_user(self, user_id: str) -> int:
        texts = await store.user_texts(self.pool, user_id)
        if len(texts) < MIN_TEXTS:
            return 0
        embeddings = await self.embedder.embed(texts)
        space = TextSpace(texts, embeddings)
        clusters, _, threshold = await asyncio.to_thread(
            cluster, space, self.settings.categories.cluster_distance_threshold
        )
        await store.replace_clusters(
            self.pool,
            user_id,
            [
                {"label": c.label, "members": [{"text": t, "similarity": s} for t, s in c.members]}
                for c in clusters
            ],
            threshold,
        )
        return 1

    async def run(self) -> None:
        await repeat(
            self.refresh,
            every_s=lambda: self.settings.categories.cluster_interval_s,
            what="clustering",
        )
