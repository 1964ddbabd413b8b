"""A labelled card stream Spendstream did not design: the transaction simulator of the Fraud
Detection Handbook (Le Borgne, Siblini, Lebichot, Bontempi, "Reproducible Machine Learning for
Credit Card Fraud Detection", chapter 3), written out from its published description.

Customers and terminals sit on a 100 x 100 grid; a customer pays at the terminals within a radius
of home, a Poisson number of times a day, amounts normal around the customer's own mean. Three
kinds of fraud, as the handbook plants them:

- ``large_amount``: every transaction over 220 is fraud;
- ``compromised_terminal``: each day some terminals are compromised, and every transaction at
  them in the next 28 days is fraud;
- ``compromised_card``: each day some customers' cards are compromised, and over the next 14
  days a third of their transactions are multiplied by 5 and are fraud.

Nothing here reads Spendstream's code or shares its demo generator's habits: it is the
third-party stream the anomaly evaluation is judged on. ``python -m bench.cardsim out.csv``
writes it in the columns ``spendstream eval anomalies --stream`` reads by default.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

LARGE_AMOUNT = 220.0
TERMINAL_DAYS = 28
CARD_DAYS = 14
CARD_MULTIPLIER = 5.0
COLUMNS = (
    "transaction_id",
    "account_id",
    "timestamp",
    "amount",
    "merchant",
    "channel",
    "is_anomaly",
)


@dataclass(frozen=True)
class CardTransaction:
    transaction_id: str
    customer: int
    terminal: int
    timestamp: datetime
    amount: float
    fraud: int
    scenario: str  # "" for genuine ones

    def row(self) -> dict[str, str]:
        return {
            "transaction_id": self.transaction_id,
            "account_id": f"card-{self.customer:05d}",
            "timestamp": self.timestamp.isoformat(),
            "amount": f"{self.amount:.2f}",
            "merchant": f"Terminal {self.terminal:05d}",
            "channel": "card",
            "is_anomaly": str(self.fraud),
        }


def _genuine(
    rng: np.random.Generator, customers: int, terminals: int, days: int, radius: float
) -> list[list[float]]:
    """Rows of [customer, terminal, day, second, amount] before any fraud, in time order."""
    homes = rng.uniform(0, 100, size=(customers, 2))
    means = rng.uniform(5, 100, size=customers)
    per_day = rng.uniform(0, 4, size=customers)
    sites = rng.uniform(0, 100, size=(terminals, 2))
    rows: list[list[float]] = []
    for customer in range(customers):
        near = np.flatnonzero(np.linalg.norm(sites - homes[customer], axis=1) < radius)
        if not len(near):
            continue
        mean, spread = means[customer], means[customer] / 2
        for day in range(days):
            for _ in range(rng.poisson(per_day[customer])):
                second = int(rng.normal(86400 / 2, 20000))
                if not 0 <= second < 86400:
                    continue
                amount = rng.normal(mean, spread)
                if amount < 0:
                    amount = rng.uniform(0, mean * 2)
                rows.append([customer, int(rng.choice(near)), day, second, round(amount, 2)])
    rows.sort(key=lambda r: (r[2], r[3]))
    return rows


def simulate(
    customers: int = 300,
    terminals: int = 1000,
    days: int = 75,
    *,
    seed: int = 0,
    radius: float = 5.0,
    terminals_per_day: int = 2,
    cards_per_day: int = 3,
    start: datetime = datetime(2026, 4, 1, tzinfo=UTC),
) -> list[CardTransaction]:
    """The handbook's stream, fraud planted as it plants it. Defaults give about 45,000 rows."""
    rng = np.random.default_rng(seed)
    table = np.array(_genuine(rng, customers, terminals, days, radius))
    customer, terminal, day = (table[:, i].astype(int) for i in range(3))
    amount = table[:, 4].copy()
    scenario = np.full(len(table), "", dtype=object)
    scenario[amount > LARGE_AMOUNT] = "large_amount"
    # Compromised on day d: fraud from day d + 1 on, as in the handbook.
    for when in range(days):
        for t in rng.choice(terminals, size=terminals_per_day, replace=False):
            hit = (terminal == t) & (day > when) & (day <= when + TERMINAL_DAYS)
            scenario[hit] = "compromised_terminal"
        for c in rng.choice(customers, size=cards_per_day, replace=False):
            window = (customer == c) & (day > when) & (day <= when + CARD_DAYS)
            hit = window & (rng.random(len(table)) < 1 / 3) & (scenario != "compromised_card")
            amount[hit] = np.round(amount[hit] * CARD_MULTIPLIER, 2)
            scenario[hit] = "compromised_card"
    return [
        CardTransaction(
            transaction_id=f"cs{seed}-{i:07d}",
            customer=int(customer[i]),
            terminal=int(terminal[i]),
            timestamp=start + timedelta(days=int(day[i]), seconds=int(table[i, 3])),
            amount=max(float(amount[i]), 0.01),
            fraud=int(scenario[i] != ""),
            scenario=str(scenario[i]),
        )
        for i in range(len(table))
    ]


def write_csv(transactions: list[CardTransaction], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(t.row() for t in transactions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--days", type=int, default=75)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    stream = simulate(args.customers, args.terminals, args.days, seed=args.seed)
    write_csv(stream, args.out)
    frauds = sum(t.fraud for t in stream)
    print(f"{len(stream):,} transactions, {frauds:,} fraud ({frauds / len(stream):.1%})")


if __name__ == "__main__":
    main()
