"""schemathesis against both OpenAPI documents: no 5xx, and every response matches its schema.

Runs schemathesis' own runner (its pytest plugin does not support pytest 9 yet) on a bounded
number of examples per operation, with a fixed seed so a failure reproduces.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.devstack.stack import Stack, service_url

pytestmark = pytest.mark.integration
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Per operation; `make fuzz` raises SPENDSTREAM_FUZZ_EXAMPLES to 10,000 for the long run.
EXAMPLES_PER_OPERATION = max(10, int(os.environ.get("SPENDSTREAM_FUZZ_EXAMPLES", "300")) // 30)


@pytest.mark.parametrize("service", ["api", "ingest"])
async def test_no_server_errors_and_responses_match_the_schema(
    stack: Stack,
    new_user,
    service: str,  # type: ignore[no-untyped-def]
) -> None:
    _, key = await new_user(f"fuzz-{service}")
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{service_url(stack.settings, service)}/openapi.json",
            "-H",
            f"Authorization: Bearer {key}",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "1",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    print(done.stdout[-1500:])  # schemathesis' summary: operations, requests, failures
    assert done.returncode == 0, done.stdout[-4000:]
