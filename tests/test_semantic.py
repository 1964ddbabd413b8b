"""Embeddings offline, normalization, clustering and kNN categorization."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import orjson
import pytest

from services.core.embeddings import Embedder, load_model
from services.core.semantic import TextSpace, cluster, knn_predict
from services.core.text import normalize_text


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("SQ *BLUE BOTTLE COFFEE #12 OAKLAND CA", "blue bottle coffee"),
        ("WHOLE FOODS MARKET 1021 NEW YORK NY", "whole foods market"),
        ("POS DEBIT SHELL OIL 57444", "shell oil"),
        ("TST* JOES PIZZA", "joes pizza"),
        ("NETFLIX.COM LOS GATOS CA", "netflix"),
        ("AMAZON.COM*RT7Y1", "amazon"),
        ("", ""),
    ],
)
def test_normalization(raw: str, normalized: str) -> None:
    assert normalize_text(raw) == normalized


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_model()


def test_model_loads_and_embeds_with_the_network_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else ""
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network blocked in this test: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    embedder = Embedder(None, model=load_model())
    vectors = embedder.encode_now(["grocery store", "supermarket", "airline tickets"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


async def test_each_text_is_embedded_once_per_process(model) -> None:  # type: ignore[no-untyped-def]
    embedder = Embedder(None, model=model)
    first = await embedder.embed(["coffee", "tea", "coffee"])
    second = await embedder.embed(["tea", "coffee"])
    assert embedder.encoded == 2
    np.testing.assert_array_equal(first[0], second[1])


def test_clusters_are_named_by_their_most_central_member(model) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "whole foods market",
        "trader joes",
        "safeway",
        "kroger",
        "delta air lines",
        "united airlines",
        "american airlines",
    ]
    space = TextSpace(texts, Embedder(None, model=model).encode_now(texts))
    clusters, assignment, threshold = cluster(space, threshold=0.75)
    airlines = {
        t for t, _ in next(c for c in clusters if "delta air lines" in dict(c.members)).members
    }
    assert {"delta air lines", "united airlines", "american airlines"} <= airlines
    assert len(assignment) == len(texts) and 0 < threshold < 1
    for c in clusters:
        assert c.label == c.members[0][0]
        sims = [s for _, s in c.members]
        assert sims == sorted(sims, reverse=True)


def test_knn_prefers_the_nearest_and_reports_confidence() -> None:
    similarities = np.array([[0.95, 0.40, 0.30], [0.51, 0.50, 0.49]])
    predictions = knn_predict(similarities, ["Dining", "Groceries", "Groceries"])
    assert predictions[0].label == "Dining" and predictions[0].confidence > 0.8
    assert predictions[1].confidence < predictions[0].confidence


def test_eval_clusters_on_the_demo_merchants() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "eval", "clusters", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = orjson.loads(done.stdout)
    assert {"n_texts", "n_clusters", "nmi", "ari", "purity", "knn_accuracy"} <= set(result)
    assert result["nmi"] >= 0.6
    assert result["knn_accuracy"] >= 0.85
    assert result["nmi"] > result["kmeans"]["nmi"]
