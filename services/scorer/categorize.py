"""Auto-categorization before scoring: the user's own rule for the merchant (from a correction)
wins, then the category they last gave it; otherwise a kNN vote among shared labels, applied only
when confident. A category the user renamed or merged arrives under its new name.

Shared labels never carry one user's choices to another (services/core/tenancy.py): they are a
vetted catalogue of well-known merchants shipped with Spendstream, and merchants whose category
at least five distinct users agree on. A category one user invented ("Dr Smith psychiatry")
stays theirs."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from importlib import resources

import asyncpg

from schemas import TransactionEvent
from services.analytics.embeddings import Embedder
from services.analytics.semantic import (
    LabelNames,
    TextSpace,
    Vote,
    choose_vote,
    label_text,
)
from services.core.settings import Settings
from services.core.tasks import repeat
from services.core.text import normalize_text
from services.scorer import store
from services.scorer.categorize_types import Categorization
from services.scorer.features import merchant_key

log = logging.getLogger(__name__)


def load_catalogue() -> dict[str, str]:
    """The vetted catalogue: normalized merchant key -> category."""
    text = resources.files("services.scorer").joinpath("data/merchant_catalogue.csv").read_text()
    return {normalize_text(r["merchant"]): r["category"] for r in csv.DictReader(io.StringIO(text))}


CATALOGUE = load_catalogue()


class Categorizer:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, settings: Settings):
        self.pool = pool
        self.embedder = embedder
        self.settings = settings
        self._space: TextSpace | None = None
        self._labels: list[str] = []
        self._vote: Vote | None = None
        self._shared: dict[str, str] = {}  # the labelled pool by merchant key

    async def refresh_index(self) -> int:
        labels = dict(CATALOGUE)
        agreed = await store.labelled_merchants(self.pool, self.settings.categories.index_size)
        for row in agreed:
            labels.setdefault(row["merchant_key"], row["category"])
        texts = sorted(labels)
        if labels == self._shared:
            return len(texts)  # nothing new: the vote chosen for it stands
        ordered = [labels[t] for t in texts]
        space = await asyncio.to_thread(TextSpace, texts, await self.embedder.embed(texts))
        known = tuple(sorted(set(ordered)))
        names = LabelNames(known, await self.embedder.embed([label_text(k) for k in known]))
        vote = await asyncio.to_thread(choose_vote, space, ordered, names)
        self._space, self._labels, self._vote, self._shared = space, ordered, vote, labels
        log.info(
            "categorization index: %d texts, vote of the %d nearest at temperature %s, "
            "names at weight %s",
            len(texts),
            vote.k,
            vote.temperature,
            vote.name_weight,
        )
        return len(texts)

    async def apply(
        self, events: list[TransactionEvent]
    ) -> tuple[list[TransactionEvent], dict[tuple[str, str], Categorization]]:
        """Events with a category filled in where one can be told, and how each was decided."""
        events = await self._renamed(events)
        decided: dict[tuple[str, str], Categorization] = {}
        todo = [e for e in events if e.category is None and (e.merchant or e.description)]
        if not todo:
            return events, decided
        keys = [merchant_key(e) for e in todo]
        pairs = [(e.user_id, k) for e, k in zip(todo, keys, strict=True)]
        rules, explicit = await asyncio.gather(
            store.category_rules(self.pool, pairs), store.explicit_categories(self.pool, pairs)
        )
        chosen: dict[tuple[str, str], str] = {}
        unresolved = []
        for event, key in zip(todo, keys, strict=True):
            ident = (event.user_id, event.transaction_id)
            if (rule := rules.get((event.user_id, key))) is not None:
                chosen[ident], decided[ident] = rule, Categorization("rule", 1.0)
            elif (category := explicit.get((event.user_id, key))) is not None:
                chosen[ident], decided[ident] = category, Categorization("predicted", 1.0)
            elif (category := self._shared.get(key)) is not None:
                # A merchant of the vetted pool itself: its label, not a vote of its neighbours
                # (which, weighed evenly, could outvote it).
                chosen[ident], decided[ident] = category, Categorization("predicted", 1.0)
            else:
                unresolved.append((event, key))
        if unresolved and self._space is not None and self._vote is not None:
            texts = [key for _, key in unresolved]
            embeddings = await self.embedder.embed(texts)
            similarities = await asyncio.to_thread(self._space.similarity_to, texts, embeddings)
            predictions = self._vote.predict(similarities, self._labels, embeddings)
            for (event, _), prediction in zip(unresolved, predictions, strict=True):
                ident = (event.user_id, event.transaction_id)
                if prediction.confidence >= self.settings.categories.min_confidence:
                    chosen[ident] = prediction.label
                    decided[ident] = Categorization("predicted", prediction.confidence)
                else:
                    decided[ident] = Categorization("none", prediction.confidence)
        updated = [
            e.model_copy(update={"category": chosen[(e.user_id, e.transaction_id)]})
            if (e.user_id, e.transaction_id) in chosen
            else e
            for e in events
        ]
        return updated, decided

    async def _renamed(self, events: list[TransactionEvent]) -> list[TransactionEvent]:
        """Categories sent under a name the user has since renamed take the new name."""
        named = [e for e in events if e.category is not None]
        if not named:
            return events
        aliases = await store.category_aliases(self.pool, sorted({e.user_id for e in named}))
        if not aliases:
            return events
        return [
            e.model_copy(update={"category": aliases[(e.user_id, e.category)]})
            if e.category is not None and (e.user_id, e.category) in aliases
            else e
            for e in events
        ]

    def _pause(self) -> float:
        # Until anyone has labelled a merchant, look again soon rather than once a minute.
        return self.settings.categories.refresh_s if self._space is not None else 5.0

    async def run(self) -> None:
        await repeat(self.refresh_index, every_s=self._pause, what="categorization index refresh")
