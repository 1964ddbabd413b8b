"""Forecast refreshes over a real PostgreSQL, served by the query API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from fastapi.testclient import TestClient

from schemas import ForecastsUpdated, TransactionEvent
from services.analytics.embeddings import Embedder
from services.api.app import create_app
from services.core.auth import create_key
from services.core.db import create_pool
from services.core.settings import Settings
from services.forecaster.clustering import ClusterRefresher
from services.forecaster.refresher import ForecastRefresher
from services.forecaster.store import apply_to_daily_spend

pytestmark = pytest.mark.integration


def history(user: str, days: int) -> list[TransactionEvent]:
    rng = np.random.default_rng(1)
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    now = start + timedelta(days=days)
    events = []
    for day in range(days):
        for category, level in (("Groceries", 45.0), ("Dining", 20.0)):
            if rng.random() < (0.8 if (day % 7) >= 5 else 0.5):
                events.append(
                    TransactionEvent.model_validate(
                        {
                            "transaction_id": f"{user}-{day}-{category}",
                            "account_id": "card",
                            "user_id": user,
                            "timestamp": start + timedelta(days=day),
                            "amount": f"{level * rng.lognormal(0, 0.3):.2f}",
                            "category": category,
                            "ingested_at": now,
                        }
                    )
                )
    return events


async def test_refresh_backtests_stores_and_publishes(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, size=3)
    published: list[ForecastsUpdated] = []

    async def publish(event: ForecastsUpdated) -> None:
        published.append(event)

    try:
        await apply_to_daily_spend(pool, history("fanny", 100))
        settings = Settings(
            database_url=fresh_dsn, forecast_backtest_folds=1, forecast_horizon_days=30
        )
        refresher = ForecastRefresher(pool, settings, publish)
        run_id = await refresher.refresh_if_due()
        assert run_id is not None
        assert await refresher.refresh_if_due() is None, "nothing new since the run"
        run = await pool.fetchrow("SELECT * FROM forecast_runs WHERE run_id = $1", run_id)
        # History to early June; 30 days reach July, so the forecast runs to the end of July.
        horizon = (date(2026, 7, 31) - run["history_end"]).days
        assert run["history_end"] >= date(2026, 6, 6)
        assert run["n_series"] == 2 and run["horizon_days"] == horizon and run["scope"] == "all"
        assert run["backtest"]["level"] == "category-month"
        assert set(run["backtest"]["model"]) == {"mase", "coverage_80"}
        assert set(run["backtest"]) >= {"seasonal_naive", "last_month", "interval"}
        days = await pool.fetchval("SELECT count(*) FROM forecasts WHERE run_id = $1", run_id)
        assert days == 2 * horizon
        months = await pool.fetch(
            "SELECT * FROM forecast_months WHERE run_id = $1 AND category = 'Groceries'", run_id
        )
        assert [(m["month"], m["days"]) for m in months] == [
            (date(2026, 6, 1), horizon - 31),
            (date(2026, 7, 1), 31),
        ]
        assert all(m["p10"] <= m["p50"] <= m["p90"] for m in months)
        assert [e.run_id for e in published] == [run_id]

        # A new user's history gets a per-user refresh with the fitted model, at the next check.
        await apply_to_daily_spend(pool, history("gina", 90))
        user_run = await refresher.refresh_if_due()
        assert user_run is not None and user_run != run_id
        scope = await pool.fetchval("SELECT scope FROM forecast_runs WHERE run_id = $1", user_run)
        assert scope == "users"
        latest = dict(await pool.fetch("SELECT user_id, run_id FROM forecast_latest"))
        assert latest == {"fanny": run_id, "gina": user_run}
        assert await refresher.refresh_if_due() is None, "nothing new since the user run"
        async with pool.acquire() as conn:
            key = (await create_key(conn, "fanny")).secret
            other = (await create_key(conn, "gus")).secret
    finally:
        await pool.close()

    with TestClient(create_app(Settings(database_url=fresh_dsn))) as client:
        horizon = (date(2026, 7, 31) - run["history_end"]).days
        response = client.get("/v1/forecasts", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
        body = response.json()
        assert body["run"]["run_id"] == run_id
        # One user in the run: its install-wide backtest would be about them alone, and the
        # history range is the caller's own.
        assert body["run"]["backtest"] is None
        first_day = min(e.timestamp.date() for e in history("fanny", 100))
        assert body["run"]["history_start"] == first_day.isoformat()
        assert {s["category"] for s in body["series"]} == {"Groceries", "Dining"}
        groceries = next(s for s in body["series"] if s["category"] == "Groceries")
        assert len(groceries["daily"]) == horizon and len(groceries["monthly"]) == 2
        point = groceries["daily"][0]
        assert float(point["p10"]) <= float(point["p50"]) <= float(point["p90"])
        filtered = client.get(
            "/v1/forecasts",
            params={"category": "Dining"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert [s["category"] for s in filtered.json()["series"]] == ["Dining"]
        stranger = client.get("/v1/forecasts", headers={"Authorization": f"Bearer {other}"})
        assert stranger.json() == {"run": None, "currency": "USD", "series": []}, (
            "nothing of fanny's shows"
        )


async def test_clusters_are_refreshed_once_per_change_across_restarts(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, size=2)

    async def spend(transaction_id: str, merchant: str) -> None:
        await pool.execute(
            """INSERT INTO transactions (user_id, transaction_id, account_id, ts, amount,
                   direction, currency, merchant, merchant_key, category, channel, source,
                   ingested_at)
               VALUES ('ada', $1, 'card', '2026-11-03T12:00:00Z', 12.50, 'debit', 'USD', $2,
                       lower($2), 'Dining', 'card', 'api', '2026-11-03T12:00:05Z')""",
            transaction_id,
            merchant,
        )

    try:
        await pool.execute("INSERT INTO users (user_id) VALUES ('ada')")
        for i, merchant in enumerate(["Blue Bottle Coffee", "Pret A Manger", "Shell Station"]):
            await spend(f"t{i}", merchant)
        embedder = Embedder(pool)
        assert await ClusterRefresher(pool, embedder, Settings()).refresh() == 1
        restarted = ClusterRefresher(pool, embedder, Settings())  # a new forecaster process
        assert await restarted.refresh() == 0, "nothing changed, nothing re-clustered"
        await spend("t3", "Starbucks")
        assert await restarted.refresh() == 1
        stored = "SELECT count(*) FROM category_clusters WHERE user_id = 'ada'"
        assert await pool.fetchval(stored) > 0
    finally:
        await pool.close()


async def test_rent_is_forecast_from_the_forecasters_own_data_even_before_the_scorer_stores_it(
    fresh_dsn: str,
) -> None:
    """The forecaster finds bills in what it consumed, not in the scorer's table: a forecast
    made while the scorer lags (here: the scorer never stored anything) still knows the rent."""
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    events = history("hana", 150) + [
        TransactionEvent.model_validate(
            {
                "transaction_id": f"rent-{month}",
                "account_id": "checking",
                "user_id": "hana",
                "timestamp": start.replace(month=month),
                "amount": "2860.00",
                "merchant": "GREYSTAR RENT PAYMENT",
                "category": "Rent",
                "ingested_at": start.replace(month=8),
            }
        )
        for month in range(1, 8)
    ]
    pool = await create_pool(fresh_dsn, size=3)
    try:
        await apply_to_daily_spend(pool, events)
        await apply_to_daily_spend(pool, events)  # redelivery changes nothing
        assert await pool.fetchval("SELECT count(*) FROM transactions") == 0
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM forecast_charges WHERE merchant_key = 'greystar rent payment'"
            )
            == 7
        )

        async def publish(event: ForecastsUpdated) -> None:
            pass

        settings = Settings(database_url=fresh_dsn, forecast_backtest_folds=1)
        run_id = await ForecastRefresher(pool, settings, publish).refresh_if_due()
        rent = await pool.fetch(
            """SELECT month, p10, p50, p90, bills FROM forecast_months
               WHERE run_id = $1 AND category = 'Rent' AND days >= 28""",
            run_id,
        )
    finally:
        await pool.close()
    assert rent, "a whole month of rent is forecast"
    for month in rent:
        assert month["bills"] == Decimal("2860.00")
        assert month["p10"] <= month["p50"] <= month["p90"]
        assert abs(month["p50"] - Decimal("2860.00")) <= Decimal("143.00")  # within 5%
