"""A labelled, many-label, multi-country merchant set that nobody here wrote: brands from
OpenStreetMap's name-suggestion-index (npm ``name-suggestion-index``, BSD-3-Clause), each with the
OSM category it is tagged with (``shop/supermarket``, ``amenity/fast_food``...) and the countries
it trades in.

    npm pack name-suggestion-index && tar xzf name-suggestion-index-*.tgz
    python -m bench.merchant_sets package/dist/json/nsi.json \
        services/devstack/data/nsi_merchants.csv

The CSV in ``services/devstack/data`` is what ``spendstream eval clusters`` judges on by default
(see ``bench/results/clusters_nsi.json``). Only categories a card could be charged at, only names in
Latin script (what card descriptors carry), and a ``descriptor`` column as a card statement
prints a name: upper case, cut to the 22 characters of the merchant-name field, with the country.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

KINDS = ("shop", "amenity", "tourism", "leisure", "healthcare", "craft", "office")
# Tagged places nobody pays at with a card, or that say nothing about spending.
NOT_MERCHANTS = frozenset(
    {
        "amenity/atm",
        "amenity/bicycle_rental",
        "amenity/post_box",
        "amenity/parcel_locker",
        "amenity/vending_machine",
        "amenity/charging_station",
        "amenity/bureau_de_change",
        "amenity/money_transfer",
        "amenity/payment_centre",
        "amenity/payment_terminal",
        "amenity/bank",
        "amenity/post_office",
        "office/government",
        "office/political_party",
    }
)
LATIN = re.compile(r"^[A-Za-z0-9À-ÿ'&.,\-+!/() ]+$")
PER_LABEL = 10
LABELS = 136


def _merchant_rows(nsi: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    by_label: dict[str, list[dict[str, str]]] = {}
    for path, entry in nsi["nsi"].items():
        parts = path.split("/")
        label = "/".join(parts[1:3])
        if parts[0] != "brands" or parts[1] not in KINDS or label in NOT_MERCHANTS:
            continue
        for item in entry["items"]:
            name = str(item.get("displayName", "")).strip()
            countries = [c for c in item.get("locationSet", {}).get("include", []) if _country(c)]
            if not LATIN.match(name) or not countries:
                continue
            by_label.setdefault(label, []).append({"name": name, "country": countries[0].upper()})
    return by_label


def _country(code: object) -> bool:
    return isinstance(code, str) and len(code) == 2 and code.isalpha() and code != "fx"


def sample(nsi: dict[str, Any], seed: int = 0) -> list[dict[str, str]]:
    """``LABELS`` categories with at least ``PER_LABEL`` brands each, ``PER_LABEL`` brands of each
    (one name once), chosen with ``seed``."""
    rng = random.Random(seed)
    by_label = {
        label: rows
        for label, rows in sorted(_merchant_rows(nsi).items())
        if len({r["name"].lower() for r in rows}) >= PER_LABEL
    }
    labels = sorted(rng.sample(sorted(by_label), min(LABELS, len(by_label))))
    seen: set[str] = set()
    out = []
    for label in labels:
        rows = list(by_label[label])
        rng.shuffle(rows)
        taken = 0
        for row in rows:
            if row["name"].lower() in seen or taken == PER_LABEL:
                continue
            seen.add(row["name"].lower())
            taken += 1
            descriptor = f"{row['name'].upper()[:22]:<22} {row['country']}"
            out.append({**row, "descriptor": descriptor, "label": label})
    return out


def write(rows: Iterable[dict[str, str]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["name", "descriptor", "country", "label"])
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nsi_json", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = sample(orjson.loads(args.nsi_json.read_bytes()), seed=args.seed)
    write(rows, args.out)
    labels = {r["label"] for r in rows}
    countries = {r["country"] for r in rows}
    print(f"wrote {len(rows)} merchants, {len(labels)} labels, {len(countries)} countries")


if __name__ == "__main__":
    main()
