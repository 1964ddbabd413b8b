"""``eval anomalies --stream``'s parts that need no stack: the confirmations a chargeback feed
posts, through an API that rate-limits them, to a scorer that takes them in a moment later."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pandas as pd

from services.devstack.stream_eval import StreamColumns, _Feedback, read_stream
from services.scorer.registry import CONFIRMED_FRAUD_REMEMBERED_METRIC


async def test_confirmations_wait_out_the_rate_limit_and_the_scorer_takes_them_in() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3"],
            "account_id": ["a", "a", "b"],
            "timestamp": ["2026-04-01T10:00:00Z", "2026-04-02T10:00:00Z", "2026-04-03T10:00:00Z"],
            "amount": [10.0, 900.0, 800.0],
            "is_anomaly": [0, 1, 1],
        }
    )
    stream = read_stream(frame, StreamColumns(merchant=None, channel=None))
    answers = iter([429, 429, 200, 503, 200])
    confirmed: list[str] = []
    taken_in = iter([0, 1, 2])  # the scorer's count, as it looks every few seconds
    looks = 0

    def api(request: httpx.Request) -> httpx.Response:
        nonlocal looks
        if request.url.host == "scorer":
            looks += 1
            return httpx.Response(
                200, text=f"{CONFIRMED_FRAUD_REMEMBERED_METRIC} {next(taken_in)}.0\n"
            )
        status = next(answers)
        if status == 200:
            confirmed.append(request.url.path)
        return httpx.Response(status, headers={"Retry-After": "0"}, json={})

    keys = {record.user_id: "key" for record in stream.records}
    feedback = _Feedback("http://api", "http://scorer", keys, stream, timedelta(days=7))
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        assert await feedback.due(client, stream.times[1] + timedelta(days=6)) == 0
        assert await feedback.due(client, stream.times[2] + timedelta(days=7)) == 2
    assert confirmed == ["/v1/anomalies/t2/feedback", "/v1/anomalies/t3/feedback"]
    assert looks == 3, "the next day waits until the scorer has taken in both confirmations"
