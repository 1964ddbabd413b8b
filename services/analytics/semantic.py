"""Semantic categories, pure: similarity of merchant texts, clustering, and kNN categorization.

Similarity blends two views of a text: the sentence embedding (all-MiniLM-L6-v2), which knows that
"sweetgreen" and "chipotle" are both places to eat, and character n-grams, which know that
"trader joe's qps" and "trader joes brooklyn" are one shop. Either alone misses what the other
sees (see the note in `spendstream eval clusters`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

EMBEDDING_WEIGHT = 0.5
# The labels' own names are a second opinion beside the neighbours: "pharmacy" is near "boots
# chemist" in the embedding even when no labelled neighbour is. Each text's similarity to each
# name, as a softmax at this temperature, votes beside the neighbours' vote (which sums to 1) at
# one of these weights, chosen on the labelled texts themselves. Names that say nothing ("c12",
# "5812") get none: by themselves they must find the labelled texts' labels clearly more often
# than always guessing the commonest label would, or a lucky text or two could buy them a
# weight that dilutes every confidence. Past 0.5 a name that misses a plainly recognized
# merchant ("mountain goat gear", "Outdoor") would halve its neighbours' unanimous confidence.
NAME_TEMPERATURE = 0.02
NAME_WEIGHTS = (0.0, 0.25, 0.5)
NAME_MIN_LIFT = 0.1
# The neighbours' vote: how many, and how sharply the nearest dominates. Three at 0.05 serve a
# pool of a few examples per label, as the shipped catalogue is; a pool of many near-synonymous
# labels with ten examples each (OpenStreetMap's brands) is read better by more neighbours
# weighed more evenly. Chosen on the labelled texts themselves, the first being the default.
KNN_GRID = tuple((k, temperature) for k in (3, 5, 10) for temperature in (0.05, 0.1, 0.2))
VOTE_SAMPLE = 1_000
VOTE_MARGIN = 0.01  # of the sampled texts...
VOTE_MARGIN_TEXTS = 3  # ...and at least this many
THRESHOLD_GRID = tuple(round(float(x), 3) for x in np.arange(0.2, 0.951, 0.025))
# Clusters of a useful size: on average at least this many texts each. Silhouette alone prefers
# many tight, tiny clusters; on OpenStreetMap's brands (bench/results/clusters_nsi.json) it made
# five to six times as many clusters as there are categories...
MIN_MEAN_CLUSTER_SIZE = 5
# ...but no cluster may swallow more than this share of the texts (or twice the mean size, in a
# small set): average linkage past the right threshold grows one catch-all cluster of everything
# ordinary, which no person would call a category.
MAX_CLUSTER_SHARE = 0.1


class TextSpace:
    """Vectors for a fixed set of texts, compared by blended cosine similarity."""

    def __init__(self, texts: Sequence[str], embeddings: np.ndarray):
        self.texts = list(texts)
        self.embeddings = np.asarray(embeddings, dtype=np.float32)
        self._ngrams = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4)).fit(
            self.texts or [""]
        )
        self._grams = self._ngrams.transform(self.texts)
        self._blend = EMBEDDING_WEIGHT

    def similarity_to(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """(len(texts), len(self.texts)) blended cosine similarities in [0, 1]."""
        semantic = np.asarray(embeddings, dtype=np.float32) @ self.embeddings.T
        lexical = (self._ngrams.transform(texts) @ self._grams.T).toarray()
        return np.asarray(self._blend * semantic + (1 - self._blend) * lexical)

    def embedding_only(self) -> TextSpace:
        """The same texts compared by their embeddings alone, for comparison."""
        space = TextSpace(self.texts, self.embeddings)
        space._grams = space._grams * 0.0
        space._blend = 1.0
        return space

    def pairwise(self) -> np.ndarray:
        return self.similarity_to(self.texts, self.embeddings)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    neighbour: str  # the most similar labelled text


def label_text(label: str) -> str:
    """A label's name as words to embed: "amenity/fast_food" -> "fast food"."""
    return re.sub(r"[_\-\s]+", " ", label.rsplit("/", 1)[-1]).strip().lower()


@dataclass(frozen=True)
class LabelNames:
    """The labels' names (``label_text``) embedded, and how much their vote counts."""

    labels: tuple[str, ...]
    embeddings: np.ndarray
    weight: float = 0.0

    def vote(self, embeddings: np.ndarray) -> np.ndarray:
        """(len(embeddings), len(labels)): each text's softmax similarity to each name."""
        logits = np.asarray(embeddings, dtype=np.float64) @ self.embeddings.T / NAME_TEMPERATURE
        logits -= logits.max(axis=1, keepdims=True)
        shares = np.exp(logits)
        return np.asarray(shares / shares.sum(axis=1, keepdims=True))

    def weighted(self, weight: float) -> LabelNames:
        return replace(self, weight=weight)


def knn_predict(
    similarities: np.ndarray,
    labels: Sequence[str],
    *,
    k: int = 3,
    temperature: float = 0.05,
    names: LabelNames | None = None,
    embeddings: np.ndarray | None = None,
) -> list[Prediction]:
    """Similarity-weighted vote of the ``k`` nearest labelled texts (softmax over similarity, so
    the nearest dominates unless others are nearly as close), with the ``names``' vote on the
    texts' ``embeddings`` beside it at its weight. Confidence is the winning share of the votes
    times the nearest similarity: a label both the neighbours and its name point to reads
    higher than one the neighbours alone do. A tie goes to the nearer neighbour's label."""
    rows = np.atleast_2d(np.asarray(similarities, dtype=np.float64))
    n, k = len(rows), min(k, rows.shape[1])
    if n == 0 or k == 0:
        return []
    nearest = _nearest(rows, k)
    named = names if names is not None and names.weight > 0 and embeddings is not None else None
    vocabulary = sorted(set(labels) | set(named.labels if named is not None else ()))
    code = {label: i for i, label in enumerate(vocabulary)}
    neighbour_codes = np.array([code[label] for label in labels])[nearest]
    top = np.take_along_axis(rows, nearest, axis=1)
    weights = np.exp((top - top[:, :1]) / temperature)
    weights /= weights.sum(axis=1, keepdims=True)
    votes = np.zeros((n, len(vocabulary)))
    np.add.at(votes, (np.arange(n)[:, None], neighbour_codes), weights)
    total = 1.0
    if named is not None and embeddings is not None:
        votes[:, [code[label] for label in named.labels]] += named.weight * named.vote(embeddings)
        total += named.weight
    best = votes.max(axis=1)
    winner = votes.argmax(axis=1)
    for j in reversed(range(k)):  # the nearest last, so it wins a tie
        candidate = neighbour_codes[:, j]
        winner = np.where(votes[np.arange(n), candidate] == best, candidate, winner)
    confidence = best / total * np.maximum(top[:, 0], 0.0)
    return [
        Prediction(vocabulary[w], round(float(c), 4), str(j))
        for w, c, j in zip(winner, confidence, nearest[:, 0], strict=True)
    ]


def _nearest(rows: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` most similar columns, most similar first."""
    if k < rows.shape[1]:
        # In column order, so that equally similar texts keep it: the first listed is nearer.
        candidates = np.sort(np.argpartition(-rows, k - 1, axis=1)[:, :k], axis=1)
    else:
        candidates = np.tile(np.arange(rows.shape[1]), (len(rows), 1))
    order = np.argsort(-np.take_along_axis(rows, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


@dataclass(frozen=True)
class Vote:
    """How the kNN vote is taken: the ``k`` nearest at a softmax ``temperature``, and the labels'
    ``names`` beside them at their weight."""

    k: int = 3
    temperature: float = 0.05
    names: LabelNames | None = None

    @property
    def name_weight(self) -> float:
        return self.names.weight if self.names is not None else 0.0

    def predict(
        self, similarities: np.ndarray, labels: Sequence[str], embeddings: np.ndarray | None
    ) -> list[Prediction]:
        return knn_predict(
            similarities,
            labels,
            k=self.k,
            temperature=self.temperature,
            names=self.names,
            embeddings=embeddings,
        )


def leave_one_out(space: TextSpace, labels: Sequence[str], vote: Vote = Vote()) -> list[Prediction]:
    """Each text's prediction from all the others."""
    similarities = space.pairwise()
    np.fill_diagonal(similarities, -np.inf)
    return vote.predict(similarities, labels, space.embeddings)


def leave_one_out_accuracy(space: TextSpace, labels: Sequence[str], vote: Vote = Vote()) -> float:
    predicted = leave_one_out(space, labels, vote)
    return float(np.mean([p.label == label for p, label in zip(predicted, labels, strict=True)]))


def choose_vote(space: TextSpace, labels: Sequence[str], names: LabelNames, seed: int = 0) -> Vote:
    """The vote that predicts the labelled texts best, each from all the others (on at most
    ``VOTE_SAMPLE`` of them). First the names' weight of ``NAME_WEIGHTS`` at the default ``k``
    and temperature, the smallest on a tie; none for names that alone beat the commonest label
    by less than ``NAME_MIN_LIFT``. Then another ``k`` and temperature of ``KNN_GRID`` only if
    it is right on clearly more texts (``VOTE_MARGIN``): on a small pool a few lucky texts
    would otherwise choose it."""
    n = len(space.texts)
    default = Vote(names=names.weighted(0.0))
    if n < 2:
        return default
    rows = np.arange(n)
    if n > VOTE_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(n, VOTE_SAMPLE, replace=False))
    sample, sample_embeddings = [space.texts[int(r)] for r in rows], space.embeddings[rows]
    similarities = space.similarity_to(sample, sample_embeddings)
    similarities[np.arange(len(rows)), rows] = -np.inf
    truth = [labels[int(r)] for r in rows]
    by_name = names.vote(sample_embeddings).argmax(axis=1)
    named_right = np.mean([names.labels[j] == y for j, y in zip(by_name, truth, strict=True)])
    commonest = Counter(truth).most_common(1)[0][1] / len(truth)
    weights = NAME_WEIGHTS if named_right >= commonest + NAME_MIN_LIFT else (0.0,)

    def right(vote: Vote) -> int:
        predicted = vote.predict(similarities, labels, sample_embeddings)
        return sum(p.label == y for p, y in zip(predicted, truth, strict=True))

    scored = {
        (k, temperature, weight): right(Vote(k, temperature, names.weighted(weight)))
        for k, temperature in KNN_GRID
        for weight in weights
    }
    k, temperature = KNN_GRID[0]
    chosen = max(weights, key=lambda w: (scored[(k, temperature, w)], -w))
    best = max(scored, key=lambda key: scored[key])  # the first of the grid on a tie
    margin = max(VOTE_MARGIN_TEXTS, VOTE_MARGIN * len(rows))
    if scored[best] - scored[(k, temperature, chosen)] >= margin:
        k, temperature, chosen = best
    return Vote(k, temperature, names.weighted(chosen))


@dataclass(frozen=True)
class AppliedAccuracy:
    """kNN categorization as the scorer applies it: only at or above a confidence threshold."""

    threshold: float
    precision: float | None  # right among those applied; None when none is applied
    coverage: float  # share of texts that get a category
    top1: float  # right among all texts: what the applied predictions add up to


def applied_accuracy(
    predictions: Sequence[Prediction], labels: Sequence[str], threshold: float
) -> AppliedAccuracy:
    right = np.array([p.label == label for p, label in zip(predictions, labels, strict=True)])
    applied = np.array([p.confidence >= threshold for p in predictions])
    return AppliedAccuracy(
        threshold,
        float(right[applied].mean()) if applied.any() else None,
        float(applied.mean()),
        float((right & applied).mean()),
    )


def threshold_for_precision(
    predictions: Sequence[Prediction], labels: Sequence[str], precision: float
) -> float | None:
    """The lowest confidence threshold at which the applied predictions reach ``precision``
    (the most coverage for that precision), or None if no threshold does."""
    for threshold in sorted({p.confidence for p in predictions}):
        applied = applied_accuracy(predictions, labels, threshold)
        if applied.precision is not None and applied.precision >= precision:
            return threshold
    return None


@dataclass(frozen=True)
class Cluster:
    label: str  # the most central member
    members: list[tuple[str, float]]  # (text, similarity to the cluster), most central first


def _assign(distances: np.ndarray, threshold: float) -> np.ndarray:
    if len(distances) < 2:
        return np.zeros(len(distances), dtype=int)
    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=threshold, metric="precomputed", linkage="average"
    )
    return np.asarray(model.fit_predict(distances))


def choose_threshold(distances: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID) -> float:
    """The distance threshold of the best silhouette (cosine distance: tight clusters far from
    each other) among the clusterings of a useful size: ``MIN_MEAN_CLUSTER_SIZE`` texts a cluster
    on average, none past ``MAX_CLUSTER_SHARE``. If none is that coarse without a catch-all
    cluster (a person's few dozen shops, mostly one of a kind), the best silhouette of those
    without one: the coarsest would pour unlike shops together (a burger chain with a
    supermarket, a cinema with airlines) to reach a size the texts do not have. No k is fixed
    in advance."""
    n = len(distances)
    largest_allowed = max(MAX_CLUSTER_SHARE * n, 2 * MIN_MEAN_CLUSTER_SIZE)
    candidates: list[tuple[float, float, float]] = []  # (threshold, silhouette, mean size)
    for threshold in grid:
        assignment = _assign(distances, threshold)
        k = len(set(assignment))
        if 2 <= k < n and np.bincount(assignment).max() <= largest_allowed:
            score = silhouette_score(distances, assignment, metric="precomputed")
            candidates.append((threshold, float(score), n / k))
    if not candidates:
        return float(grid[len(grid) // 2])
    useful = [c for c in candidates if c[2] >= MIN_MEAN_CLUSTER_SIZE]
    return float(max(useful or candidates, key=lambda c: c[1])[0])


def cluster(
    space: TextSpace, threshold: float | None = None
) -> tuple[list[Cluster], np.ndarray, float]:
    """Agglomerative clustering on blended cosine distance; each cluster is named by its most
    central member. Returns the clusters, each text's cluster index, and the threshold used."""
    similarities = np.clip(space.pairwise(), 0.0, 1.0)
    distances = 1.0 - similarities
    np.fill_diagonal(distances, 0.0)
    distances = (distances + distances.T) / 2
    chosen = threshold if threshold is not None else choose_threshold(distances)
    assignment = _assign(distances, chosen)
    clusters = []
    for index in sorted(set(assignment)):
        members = np.flatnonzero(assignment == index)
        centrality = similarities[np.ix_(members, members)].mean(axis=1)
        order = members[np.argsort(-centrality)]
        clusters.append(
            Cluster(
                label=space.texts[order[0]],
                members=[
                    (space.texts[i], round(float(similarities[i, members].mean()), 4))
                    for i in order
                ],
            )
        )
    return clusters, assignment, chosen


def purity(labels: Sequence[str], assignment: np.ndarray) -> float:
    total = 0
    for index in set(assignment):
        members = [labels[int(i)] for i in np.flatnonzero(assignment == index)]
        total += Counter(members).most_common(1)[0][1]
    return total / len(labels)


def cluster_scores(labels: Sequence[str], assignment: np.ndarray) -> dict[str, float]:
    return {
        "nmi": float(normalized_mutual_info_score(labels, assignment)),
        "ari": float(adjusted_rand_score(labels, assignment)),
        "purity": purity(labels, assignment),
    }


def kmeans_by_silhouette(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    """The baseline: KMeans on the embeddings, k chosen by silhouette."""
    best, best_score = np.zeros(len(embeddings), dtype=int), -np.inf
    for k in range(2, max(3, min(40, len(embeddings) // 2))):
        assignment = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(embeddings)
        score = silhouette_score(embeddings, assignment, metric="cosine")
        if score > best_score:
            best, best_score = assignment, score
    return best
