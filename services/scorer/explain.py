"""Readable reasons for a score, each with the feature and value behind it."""

from __future__ import annotations

from typing import Any

from services.scorer.features import FeatureContext

AMOUNT_RATIO_NOTABLE = 3.0
RARE_HOUR_SHARE = 0.03
MIN_HISTORY_FOR_HABITS = 20
BURST_PER_HOUR = 4


def _part_of_day(hour: int) -> str:
    if hour < 5:
        return "at night"
    if hour < 12:
        return "in the morning"
    if hour < 18:
        return "in the afternoon"
    return "in the evening"


def explain(
    context: FeatureContext, detector_scores: dict[str, float], *, flagged: bool = False
) -> list[dict[str, Any]]:
    """Reasons, strongest first. Empty when nothing stands out, but never for a flagged one."""
    reasons: list[tuple[float, dict[str, Any]]] = []
    if context.amount_ratio is not None and context.amount_ratio >= AMOUNT_RATIO_NOTABLE:
        reasons.append(
            (
                context.amount_ratio,
                {
                    "text": (
                        f"amount {context.amount_ratio:.1f}x "
                        f"your usual {context.amount_basis} spend"
                    ),
                    "feature": "amount_robust_z",
                    "value": round(context.amount_ratio, 2),
                },
            )
        )
    if context.merchant_new:
        reasons.append(
            (3.0, {"text": "first time at this merchant", "feature": "merchant_new", "value": 1.0})
        )
    if context.history_size >= MIN_HISTORY_FOR_HABITS and context.hour_share < RARE_HOUR_SHARE:
        local = context.local_time
        reasons.append(
            (
                2.5,
                {
                    "text": f"{local:%H:%M}, you rarely spend {_part_of_day(local.hour)}",
                    "feature": "hour_share",
                    "value": round(context.hour_share, 4),
                },
            )
        )
    if context.velocity_1h + 1 >= BURST_PER_HOUR:
        reasons.append(
            (
                float(context.velocity_1h),
                {
                    "text": f"{context.velocity_1h + 1} transactions within an hour",
                    "feature": "velocity_1h",
                    "value": float(context.velocity_1h + 1),
                },
            )
        )
    if context.duplicate_of_recent:
        reasons.append(
            (
                5.0,
                {
                    "text": "same amount at the same merchant within 24 hours: possible duplicate",
                    "feature": "duplicate_within_24h",
                    "value": 1.0,
                },
            )
        )
    if context.home_country and context.country and context.country != context.home_country:
        reasons.append(
            (
                4.0,
                {
                    "text": f"in {context.country}, outside your usual {context.home_country}",
                    "feature": "foreign_country",
                    "value": 1.0,
                },
            )
        )
    elif context.home_currency and context.currency != context.home_currency:
        reasons.append(
            (
                3.5,
                {
                    "text": (
                        f"charged in {context.currency}, not your usual {context.home_currency}"
                    ),
                    "feature": "foreign_currency",
                    "value": 1.0,
                },
            )
        )
    if not reasons and detector_scores:
        name, value = max(detector_scores.items(), key=lambda item: item[1])
        if flagged or value >= 0.99:
            reasons.append(
                (
                    0.0,
                    {
                        "text": f"unusual combination of features (strongest signal: {name})",
                        "feature": name,
                        "value": round(value, 4),
                    },
                )
            )
    reasons.sort(key=lambda item: -item[0])
    return [reason for _, reason in reasons]
