"""Response models of the query API."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.scores import Score


class TransactionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transaction_id": "tx-20261103-0001",
                    "account_id": "checking-1",
                    "timestamp": "2026-11-03T12:41:07+01:00",
                    "amount": "42.17",
                    "direction": "debit",
                    "currency": "EUR",
                    "merchant": "WHOLE FOODS MARKET 1021",
                    "description": None,
                    "category": "Groceries",
                    "category_source": "provided",
                    "category_confidence": None,
                    "channel": "card",
                    "country": "DE",
                    "metadata": None,
                    "ingested_at": "2026-11-03T11:41:07.120Z",
                    "score": None,
                }
            ]
        }
    )

    transaction_id: str
    account_id: str
    timestamp: datetime
    amount: Decimal
    direction: str
    currency: str
    merchant: str | None
    description: str | None
    category: str | None
    category_source: str = Field(
        description="provided (by the bank or app), predicted, user (you set it), or none."
    )
    category_confidence: float | None
    channel: str
    country: str | None
    metadata: dict[str, Any] | None
    ingested_at: datetime
    revision: int = Field(1, description="The bank's revision of it that is stored.")
    status: Literal["pending", "posted"] | None = Field(None, description="As the bank said.")
    note: str | None = Field(None, description="Your note.")
    excluded: bool = Field(False, description="Left out of analytics at your request.")
    display_merchant: str | None = Field(None, description="Your name for the merchant.")
    score: Score | None = Field(description="Absent until the scorer has stored it.")


class ChangeAccepted(BaseModel):
    """A change the broker acknowledged; it shows once the pipeline has applied it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"change_id": "3f2a9c", "transaction_id": "tx-20261103-0001", "kind": "edit"}
            ]
        }
    )

    change_id: str
    transaction_id: str
    kind: Literal["edit", "remove"]


class Anomaly(TransactionOut):
    feedback: Literal["fraud", "legit"] | None = Field(description="The user's verdict, if any.")


class AnomalyPage(BaseModel):
    items: list[Anomaly]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": "fraud"}]})

    label: Literal["fraud", "legit"] = Field(
        description="`fraud` keeps it out of training; `legit` teaches the models it is fine."
    )


class FeedbackOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transaction_id": "tx-20261103-0001",
                    "label": "fraud",
                    "updated_at": "2026-11-04T08:00:00Z",
                }
            ]
        }
    )

    transaction_id: str
    label: Literal["fraud", "legit"]
    updated_at: datetime


class TransactionPage(BaseModel):
    items: list[TransactionOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class DriftPoint(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "window_end": "2026-11-03T00:00:00Z",
                    "current_start": "2026-10-27T00:00:00Z",
                    "reference_start": "2026-09-29T00:00:00Z",
                    "reference_end": "2026-10-27T00:00:00Z",
                    "status": "drift",
                    "n_current": 64,
                    "n_reference": 240,
                    "category_jsd": 0.18,
                    "category_psi": 0.74,
                    "amount_jsd": 0.05,
                    "amount_ks": 0.11,
                    "amount_ks_pvalue": 0.2,
                    "amount_wasserstein": 6.2,
                    "top_contributors": [
                        {
                            "category": "Travel",
                            "contribution": 0.52,
                            "current_share": 0.31,
                            "reference_share": 0.04,
                        }
                    ],
                    "breached": ["category_jsd"],
                    "threshold": 0.1,
                }
            ]
        }
    )

    window_end: datetime = Field(description="End of the current window (event time).")
    current_start: datetime | None = Field(description="Start of the current window.")
    reference_start: datetime | None
    reference_end: datetime | None
    status: Literal["ok", "drift", "insufficient"]
    n_current: int
    n_reference: int
    category_jsd: float | None = Field(
        description="Jensen-Shannon divergence of the category mix, base 2, in [0, 1]."
    )
    category_psi: float | None = Field(
        description="Population stability index of the category mix."
    )
    amount_jsd: float | None = Field(description="JSD of amounts over fixed log-spaced bins.")
    amount_ks: float | None = Field(
        description="Two-sample Kolmogorov-Smirnov statistic of amounts."
    )
    amount_ks_pvalue: float | None
    amount_wasserstein: float | None = Field(description="Wasserstein distance between amounts.")
    top_contributors: list[dict[str, Any]]
    breached: list[str] = Field(description="Metrics at or above the threshold.")
    threshold: float


class DriftSeries(BaseModel):
    scope: Literal["account"]
    account_id: str
    points: list[DriftPoint] = Field(description="Oldest first.")


class DriftResponse(BaseModel):
    series: list[DriftSeries]


class ForecastPoint(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"day": "2026-11-04", "p10": "12.40", "p50": "38.10", "p90": "96.00"}]
        }
    )

    day: date
    p10: Decimal = Field(description="10th percentile of spend that day.")
    p50: Decimal = Field(description="Median forecast.")
    p90: Decimal = Field(description="90th percentile.")


class MonthForecast(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "month": "2026-12-01",
                    "days": 31,
                    "p10": "2860.00",
                    "p50": "2860.00",
                    "p90": "2860.00",
                    "bills": "2860.00",
                }
            ]
        }
    )

    month: date = Field(description="First day of the month.")
    days: int = Field(description="Forecast days in this month (partial months have fewer).")
    p10: Decimal = Field(description="10th percentile of the month's total.")
    p50: Decimal = Field(description="Median: recurring bills plus everyday spending.")
    p90: Decimal = Field(description="90th percentile of the month's total.")
    bills: Decimal = Field(
        Decimal(0),
        description="The part of p50 that is recurring bills, at their amount and due date.",
    )


class ForecastSeries(BaseModel):
    account_id: str
    category: str
    daily: list[ForecastPoint]
    monthly: list[MonthForecast]


class ForecastRunInfo(BaseModel):
    run_id: str
    created_at: datetime
    horizon_days: int
    history_start: date | None = Field(description="Your first day of spending it learned from.")
    history_end: date | None = Field(description="Your last day of spending it learned from.")
    backtest: dict[str, Any] | None = Field(
        description="Month-by-month backtest over all series of the last full refresh: MASE "
        "of each category-month total, for the model, seasonal naive (the last week repeated) "
        "and the same as last month, and how often the 80% interval held the outcome. An "
        "aggregate over other users' series too, so it is shown only when that refresh covered "
        "at least 5 users; null otherwise."
    )


class ForecastResponse(BaseModel):
    run: ForecastRunInfo | None = Field(description="Null until the first refresh has run.")
    currency: str = Field(
        "USD",
        description="Your base currency: amounts in others were converted at the rate of their "
        "date when counted; those without a rate have series of their own, e.g. `Travel (JPY)`.",
    )
    series: list[ForecastSeries]


class ClusterMember(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "whole foods market", "similarity": 0.81}]}
    )

    text: str = Field(description="Normalized merchant or category text.")
    similarity: float = Field(description="Mean similarity to the cluster's members.")


class CategoryCluster(BaseModel):
    cluster_id: int
    label: str = Field(description="The most central member.")
    size: int
    members: list[ClusterMember] = Field(description="Most central first.")
    threshold: float = Field(description="Cosine distance threshold the clustering used.")
    computed_at: datetime


class ClusterResponse(BaseModel):
    clusters: list[CategoryCluster]


class CurrencyTotal(BaseModel):
    currency: str = Field(description="ISO 4217 code.")
    total: Decimal = Field(description="In that currency.")


class CategoryTotal(BaseModel):
    category: str
    currency: str = Field(
        description="The currency of the amounts: the base currency, or the category's own "
        "currency where no exchange rate was known (then the category is named so, "
        "e.g. `Travel (JPY)`, and left out of the summary's totals)."
    )
    total: Decimal = Field(description="Spent this month.")
    transactions: int
    previous_month: Decimal = Field(description="Spent the month before.")
    change_vs_previous: float | None = Field(description="Relative change; null if nothing before.")
    average_3_months: Decimal = Field(description="Mean of the three months before.")
    change_vs_3_month_average: float | None


class MerchantTotal(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"merchant": "WHOLE FOODS MARKET 1021", "total": "412.30", "transactions": 9}
            ]
        }
    )

    merchant: str
    total: Decimal
    transactions: int


class RecurringPayment(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "merchant": "NETFLIX.COM",
                    "cadence": "monthly",
                    "typical_amount": 15.49,
                    "last_amount": 17.81,
                    "last_date": "2026-10-12T04:10:00",
                    "next_expected": "2026-11-11T04:10:00",
                    "occurrences": 10,
                    "amount_rose": True,
                    "direction": "debit",
                }
            ]
        }
    )

    merchant: str
    cadence: Literal["weekly", "biweekly", "semimonthly", "monthly", "quarterly", "yearly"]
    typical_amount: float
    last_amount: float
    last_date: datetime
    next_expected: datetime
    occurrences: int
    amount_rose: bool = Field(description="The last charge was higher than the one before.")
    direction: Literal["debit", "credit"] = Field(
        description="`debit`: a bill or subscription; `credit`: income (salary, benefits)."
    )


class DuplicateCharge(BaseModel):
    merchant: str
    amount: float
    first_transaction_id: str
    second_transaction_id: str
    first_at: datetime
    second_at: datetime


MONTH_PATTERN = r"^(19|2\d)\d{2}-(0[1-9]|1[0-2])$"


class BudgetIn(BaseModel):
    """A monthly budget for one category, or, with ``month``, that month's own amount."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"amount": "400.00"}, {"amount": "650.00", "month": "2026-12"}]
        },
    )

    amount: Decimal = Field(
        gt=0,
        max_digits=15,
        decimal_places=3,
        allow_inf_nan=False,
        description="The budget for a calendar month, in your base currency and its minor units.",
    )
    month: str | None = Field(
        None,
        pattern=MONTH_PATTERN,
        description="YYYY-MM: set this month's own amount (an override) instead of the standing "
        "monthly budget.",
    )


class BudgetProjection(BaseModel):
    p10: Decimal
    p50: Decimal
    p90: Decimal
    method: Literal["final", "forecast", "pace"] = Field(
        description="`final`: the month is over. `forecast`: month to date plus the forecast of "
        "the remaining days, with a month-level 80% interval. `pace`: no forecast yet, so month "
        "to date carried forward at its daily pace."
    )


class BudgetOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "category": "Dining",
                    "budget": "400.00",
                    "override": False,
                    "spent": "331.20",
                    "remaining": "68.80",
                    "spent_share": 0.828,
                    "projected": {
                        "p10": "402.10",
                        "p50": "452.00",
                        "p90": "519.75",
                        "method": "forecast",
                    },
                    "status": "at_risk",
                }
            ]
        }
    )

    category: str
    budget: Decimal = Field(description="This month's budget.")
    override: bool = Field(description="This month has its own amount, not the monthly budget.")
    spent: Decimal = Field(description="Debits in the category this month, local time.")
    remaining: Decimal = Field(description="Budget minus spent; negative once over.")
    spent_share: float = Field(description="Spent as a share of the budget.")
    projected: BudgetProjection = Field(description="Projected month-end spending.")
    unconverted: list[CurrencyTotal] = Field(
        default_factory=list,
        description="Spent in the category in currencies with no known exchange rate: not in "
        "`spent`, never summed into it.",
    )
    status: Literal["on_track", "at_risk", "over"] = Field(
        description="`over`: spent more than the budget. `at_risk`: projected (median) to end "
        "the month over it. `on_track`: neither."
    )


class BudgetMonth(BaseModel):
    month: str = Field(description="YYYY-MM, in each transaction's local time.")
    currency: str = Field(description="Your base currency: budgets and spending are in it.")
    known_through: date | None = Field(
        description="The last day of the month whose spending is in; null before the month began."
    )
    budgets: list[BudgetOut]


class Summary(BaseModel):
    month: str = Field(description="YYYY-MM, in each transaction's local time.")
    account_id: str | None
    currency: str = Field(description="Your base currency: every total is in it.")
    currency_note: str | None = Field(
        description="How amounts in other currencies were converted, if any were."
    )
    total: Decimal = Field(description="Spent this month, in the base currency.")
    previous_month_total: Decimal
    unconverted: list[CurrencyTotal] = Field(
        description="Spent in currencies with no known exchange rate, per currency: never summed "
        "into the totals."
    )
    categories: list[CategoryTotal]
    top_merchants: list[MerchantTotal]
    anomalies: int = Field(description="Transactions flagged anomalous this month.")
    recurring: list[RecurringPayment]
    possible_duplicates: list[DuplicateCharge]
    budgets: list[BudgetOut] = Field(
        default_factory=list, description="Each budget of the month against what is spent."
    )


class Account(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "checking",
                    "transactions": 1203,
                    "first": "2026-01-01T09:00:00Z",
                    "last": "2026-10-31T18:22:00Z",
                    "first_month": "2026-01",
                    "last_month": "2026-10",
                }
            ]
        }
    )

    account_id: str
    transactions: int
    first: datetime
    last: datetime
    first_month: str = Field(
        description="The month (YYYY-MM) of the first transaction, in its own local time, as "
        "summaries count months."
    )
    last_month: str = Field(description="Likewise, the month of the latest transaction.")


class Preferences(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"base_currency": "EUR"}]}
    )

    base_currency: str = Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code. Amounts in other currencies are converted to it at the "
        "reference rate of each transaction's date (rates come from `spendstream fx import`).",
    )


class CategoryRenamed(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"old_name": "Eating out", "new_name": "Dining", "merged": True, "accounts": 2}
            ]
        }
    )

    old_name: str
    new_name: str
    merged: bool = Field(description="The new name was a category already: the two are one now.")
    accounts: int = Field(description="Accounts the rename was published for.")
