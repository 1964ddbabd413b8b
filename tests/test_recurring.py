"""The recurring-payment detector, one case each: what a person calls a bill or income."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from services.analytics.insights import Charge, recurring_payments


def series(
    merchant: str, days: list[date], amounts: list[float], direction: str = "debit"
) -> list[Charge]:
    return [
        Charge(
            f"{merchant}-{i}",
            merchant.lower(),
            merchant,
            a,
            datetime(d.year, d.month, d.day, 9),
            direction,
        )
        for i, (d, a) in enumerate(zip(days, amounts, strict=True))
    ]


def monthly(first: date, n: int, day: int = 1) -> list[date]:
    out = []
    for k in range(n):
        year, month = divmod(first.month - 1 + k, 12)
        out.append(date(first.year + year, month + 1, day))
    return out


def only(charges: list[Charge]):  # type: ignore[no-untyped-def]
    found = recurring_payments(charges)
    assert len(found) == 1, found
    return found[0]


def test_monthly_rent_even_with_a_skipped_month() -> None:
    days = monthly(date(2026, 1, 1), 8)
    del days[4]  # May was paid in cash
    rent = only(series("GREYSTAR RENT", days, [2860.0] * len(days)))
    assert (rent.cadence, rent.typical_amount, rent.direction) == ("monthly", 2860.0, "debit")
    assert rent.next_expected.date() == date(2026, 9, 1), "the same day of the next month"


def test_salary_and_other_credits_are_income() -> None:
    salary = only(
        series("ACME PAYROLL", monthly(date(2026, 1, 1), 6, day=25), [4100.0] * 6, "credit")
    )
    assert (salary.cadence, salary.direction) == ("monthly", "credit")


def test_pay_on_the_first_and_the_fifteenth() -> None:
    days = sorted(monthly(date(2026, 1, 1), 6, day=1) + monthly(date(2026, 1, 1), 6, day=15))
    pay = only(series("ACME DIR DEP", days, [2050.0] * 12, "credit"))
    assert (pay.cadence, pay.direction) == ("semimonthly", "credit")


def test_biweekly_pay() -> None:
    days = [date(2026, 1, 2) + timedelta(days=14 * k) for k in range(8)]
    pay = only(series("GLOBEX DIRECT DEP", days, [1875.5] * 8, "credit"))
    assert pay.cadence == "biweekly"
    assert pay.next_expected.date() == days[-1] + timedelta(days=14)


def test_a_subscription_whose_price_went_up() -> None:
    prices = [15.49] * 6 + [22.99] * 2  # +48%: far outside any band, and still the same service
    sub = only(series("NETFLIX.COM", monthly(date(2026, 1, 12), 8, day=12), prices))
    assert sub.amount_rose is False and sub.last_amount == 22.99
    # Its interval is the new price's, not a span back to the old one.
    assert (sub.low_amount, sub.high_amount) == (22.99, 22.99)
    rose = only(series("NETFLIX.COM", monthly(date(2026, 1, 12), 7, day=12), [15.49] * 6 + [17.99]))
    assert rose.amount_rose is True, "the month it went up, it is flagged"
    assert rose.repriced is True, "a step up from a flat price: the new price is what comes next"


def test_bills_that_move_to_the_next_business_day() -> None:
    days = []
    for d in monthly(date(2026, 1, 1), 12, day=1):
        while d.weekday() >= 5:  # a weekend: the debit goes out on Monday
            d += timedelta(days=1)
        days.append(d)
    assert any(d.day == 3 for d in days), "some moved by two days"
    bill = only(series("CON ED", days, [95.0] * 12))
    assert bill.cadence == "monthly"


def test_utilities_that_vary_within_a_band() -> None:
    rng = np.random.default_rng(3)
    amounts = [
        round(95 * (1 + 0.25 * np.cos(k / 2)) * rng.uniform(0.95, 1.05), 2) for k in range(10)
    ]
    assert max(amounts) / min(amounts) > 1.4, "a winter bill far above a summer one"
    bill = only(series("PG&E", monthly(date(2026, 1, 5), 10, day=5), amounts))
    assert bill.cadence == "monthly"
    # A higher month is one more draw of a bill that always varies, not a new price, and the
    # bill's range spans its last nine amounts (three would hold the next one half the time).
    assert amounts[-1] > amounts[-2] * 1.02 and bill.repriced is False
    assert (bill.low_amount, bill.high_amount) == (min(amounts[-9:]), max(amounts[-9:]))


@pytest.mark.parametrize(
    "amounts",
    [
        [42.1, 88.0, 23.5, 61.2, 35.0, 97.4, 18.9, 55.5],  # groceries every Saturday: no bill
    ],
)
def test_a_regular_shop_with_any_amount_is_no_bill(amounts: list[float]) -> None:
    days = [date(2026, 3, 7) + timedelta(days=7 * k) for k in range(len(amounts))]
    assert recurring_payments(series("TRADER JOE'S", days, amounts)) == []


def test_irregular_or_too_few_payments_are_not_recurring() -> None:
    assert recurring_payments(series("RENT", monthly(date(2026, 1, 1), 2), [1000.0] * 2)) == []
    scattered = [date(2026, 1, 3), date(2026, 1, 20), date(2026, 3, 1), date(2026, 3, 9)]
    assert recurring_payments(series("AMAZON", scattered, [20.0] * 4)) == []


def test_a_duplicated_payment_does_not_break_the_series() -> None:
    start = datetime(2026, 1, 1, 9)
    charges = [
        Charge(f"r{i}", "greystar", "GREYSTAR", 2860.0, start.replace(month=i + 1))
        for i in range(6)
    ]
    charges.append(
        Charge("dup", "greystar", "GREYSTAR", 2860.0, charges[3].at + timedelta(minutes=4))
    )
    [rent] = recurring_payments(charges)
    assert (rent.cadence, rent.occurrences, rent.typical_amount) == ("monthly", 6, 2860.0)
