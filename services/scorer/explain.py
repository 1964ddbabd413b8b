"""Readable reasons for a score, each with the feature and value behind it."""

from __future__ import annotations

from schemas.scores import Reason
from services.core.money import format_money
from services.scorer.confirmed import NO_SIGNALS, FraudSignals
from services.scorer.detectors.profile import COMPROMISE_FREE_UNUSUAL
from services.scorer.features import MIN_HOME_HISTORY, FeatureContext

AMOUNT_RATIO_NOTABLE = 3.0
RARE_HOUR_SHARE = 0.03
MIN_HISTORY_FOR_HABITS = 20
BURST_PER_HOUR = 4
# A busy day is news against the account's own pace: at least this many transactions in a day,
# and this many times its usual day.
BUSY_DAY_COUNT = 3
BUSY_DAY_RATIO = 3.0


def _part_of_day(hour: int) -> str:
    if hour < 5:
        return "at night"
    if hour < 12:
        return "in the morning"
    if hour < 18:
        return "in the afternoon"
    return "in the evening"


Ranked = tuple[float, Reason]  # (strength, the reason as the API shows it)


def _reason(strength: float, text: str, feature: str, value: float) -> Ranked:
    return strength, {"text": text, "feature": feature, "value": value}


def _money(context: FeatureContext, amount: float) -> str:
    return format_money(amount, context.currency)


def _times_as_much(ratio: float) -> str:
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


def _amount(context: FeatureContext) -> Ranked | None:
    ratio, usual = context.amount_ratio, context.usual_amount
    if ratio is None or usual is None or ratio < AMOUNT_RATIO_NOTABLE:
        return None
    text = (
        f"{_money(context, context.amount)} at {context.amount_basis} is "
        f"{_times_as_much(ratio)} your usual {_money(context, usual)}"
    )
    return _reason(ratio, text, "amount_robust_z", round(ratio, 2))


def _new_merchant(context: FeatureContext) -> Ranked | None:
    if not context.merchant_new:
        return None
    return _reason(3.0, "first time at this merchant", "merchant_new", 1.0)


def _rare_hour(context: FeatureContext) -> Ranked | None:
    if context.history_size < MIN_HISTORY_FOR_HABITS or context.hour_share >= RARE_HOUR_SHARE:
        return None
    local = context.local_time
    text = f"{local:%H:%M}, you rarely spend {_part_of_day(local.hour)}"
    return _reason(2.5, text, "hour_share", round(context.hour_share, 4))


def _burst(context: FeatureContext) -> Ranked | None:
    if context.velocity_1h + 1 < BURST_PER_HOUR:
        return None
    count = context.velocity_1h + 1
    text = f"{count} purchases within an hour"
    return _reason(float(context.velocity_1h), text, "velocity_1h", float(count))


def _usual_pace(daily_rate: float) -> str:
    if daily_rate >= 0.95:
        return f"about {daily_rate:.0f} a day"
    if daily_rate * 7 >= 0.95:
        return f"about {daily_rate * 7:.0f} a week"
    return f"about {max(daily_rate * 30, 1):.0f} a month"


def _busy_day(context: FeatureContext) -> Ranked | None:
    count = context.velocity_24h + 1
    if (
        context.history_size < MIN_HOME_HISTORY
        or context.velocity_1h + 1 >= BURST_PER_HOUR  # said as a burst already
        or count < max(BUSY_DAY_COUNT, BUSY_DAY_RATIO * context.daily_rate)
    ):
        return None
    text = f"{count} transactions in a day; you usually make {_usual_pace(context.daily_rate)}"
    ratio = count / max(context.daily_rate, 0.01)
    return _reason(min(ratio, 4.5), text, "velocity_24h", float(count))


def _duplicate(context: FeatureContext) -> Ranked | None:
    if not context.duplicate_of_recent:
        return None
    text = (
        f"{_money(context, context.amount)} at the same merchant again within a day: "
        "a possible duplicate charge"
    )
    return _reason(5.0, text, "duplicate_within_24h", 1.0)


def _abroad(context: FeatureContext) -> Ranked | None:
    if context.home_country and context.country and context.country != context.home_country:
        text = f"in {context.country}, outside your usual {context.home_country}"
        return _reason(4.0, text, "foreign_country", 1.0)
    if context.home_currency and context.currency != context.home_currency:
        text = f"charged in {context.currency}, not your usual {context.home_currency}"
        return _reason(3.5, text, "foreign_currency", 1.0)
    return None


def _unusual_week(context: FeatureContext) -> Ranked | None:
    """Said where the profile counts it: past the unusual amounts a person's own week has."""
    count = context.recent_unusual
    if count <= COMPROMISE_FREE_UNUSUAL:
        return None
    text = f"this account had {count} unusual amounts in the past week"
    return _reason(min(float(count), 4.5), text, "recent_unusual_amounts", float(count))


CONTEXT_REASONS = (
    _amount,
    _new_merchant,
    _rare_hour,
    _burst,
    _busy_day,
    _duplicate,
    _abroad,
    _unusual_week,
)


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _confirmed_fraud(signals: FraudSignals) -> list[Ranked]:
    reasons = []
    if signals.own_at_merchant:
        text = (
            f"fraud was confirmed at this merchant {_times(signals.own_at_merchant)} "
            "on your accounts in the past 4 weeks"
        )
        reasons.append(_reason(6.0, text, "merchant_confirmed_fraud", signals.own_at_merchant))
    if signals.shared_at_merchant:
        text = "other customers confirmed fraud at this merchant in the past 4 weeks"
        reasons.append(_reason(5.5, text, "merchant_confirmed_fraud_shared", 1.0))
    if signals.on_account:
        text = f"fraud was confirmed on this account {_times(signals.on_account)} in 2 weeks"
        reasons.append(_reason(5.0, text, "account_confirmed_fraud", signals.on_account))
    return reasons


def explain(
    context: FeatureContext,
    detector_scores: dict[str, float],
    *,
    flagged: bool = False,
    signals: FraudSignals = NO_SIGNALS,
) -> list[Reason]:
    """Reasons, strongest first. Empty when nothing stands out, but never for a flagged one."""
    reasons = [r for check in CONTEXT_REASONS if (r := check(context)) is not None]
    reasons += _confirmed_fraud(signals)
    if not reasons and detector_scores:
        name, value = max(detector_scores.items(), key=lambda item: item[1])
        if flagged or value >= 0.99:
            text = f"unusual combination of features (strongest signal: {name})"
            reasons.append(_reason(0.0, text, name, round(value, 4)))
    reasons.sort(key=lambda item: -item[0])
    return [reason for _, reason in reasons]
