import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY

from services.core.metrics import install_metrics


def requests_counted(route: str, status: str) -> float | None:
    labels = {"service": "metrics-test", "route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("spendstream_http_requests_total", labels)


async def test_requests_are_counted_by_route_template_and_status() -> None:
    app = FastAPI()
    install_metrics(app, "metrics-test")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(404, "no such item")
        return {"item_id": item_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/1")).status_code == 200
        assert (await client.get("/items/2")).status_code == 200
        assert (await client.get("/items/0")).status_code == 404
        assert (await client.get("/nowhere")).status_code == 404
        exposition = (await client.get("/metrics")).text

    template = "/items/{item_id}"
    assert requests_counted(template, "200") == 2
    assert requests_counted(template, "404") == 1
    assert requests_counted("unmatched", "404") == 1
    assert 'route="/items/1"' not in exposition  # ids never become label values
    timed = REGISTRY.get_sample_value(
        "spendstream_http_request_duration_seconds_count",
        {"service": "metrics-test", "route": template},
    )
    assert timed == 3
