"""``eval anomalies --stream``'s parts that need no stack: the confirmations a chargeback feed
posts, through an API that rate-limits them."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pandas as pd

from services.devstack.stream_eval import StreamColumns, _Feedback, read_stream


async def test_confirmations_wait_out_the_rate_limit_and_all_arrive() -> None:
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

    def api(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status == 200:
            confirmed.append(request.url.path)
        return httpx.Response(status, headers={"Retry-After": "0"}, json={})

    keys = {record.user_id: "key" for record in stream.records}
    feedback = _Feedback("http://api", keys, stream, timedelta(days=7))
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        assert await feedback.due(client, stream.times[1] + timedelta(days=6)) == 0
        assert await feedback.due(client, stream.times[2] + timedelta(days=7)) == 2
    assert confirmed == ["/v1/anomalies/t2/feedback", "/v1/anomalies/t3/feedback"]
