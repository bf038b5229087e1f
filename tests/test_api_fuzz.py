"""Property-based fuzzing of every operation in the OpenAPI schema: no input may cause a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from conftest import ADMIN_TOKEN
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from test_api_playbook import seed_draft, seed_sender

EXAMPLES = 25


@pytest.fixture
def fuzzed_api(api_server):
    # dry_run: approving a draft records the approval and sends nothing (no SMTP server here).
    api = api_server(store={"store_bodies": True}, daemon={"dry_run": True})
    now = datetime.now(UTC)
    for n in range(12):
        api.seed(language=("en", "he", "ar", None)[n % 4],
                 labels=[["abusive"], [], ["extortion", "legal_threat"]][n % 3],
                 scores={"abusive": n / 12, "extortion": 0.5, "legal_threat": 1 - n / 12},
                 received_at=now - timedelta(days=n), body=f"body {n}")
    sender = seed_sender(api, "jane@example.org")
    for n in range(1, 6):
        seed_draft(api, sender, n=n, state=("appended", "ready", "sent", "blocked", "send_failed")[n - 1])
    return api


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, base_url: str, tried: dict[str, int]) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=auth, timeout=10)
        tried[operation.label] = tried.get(operation.label, 0) + 1
        case.validate_response(response, checks=[not_a_server_error])

    run()


# schemathesis' own pytest integration (from_fixture) does not run on pytest 9;
# its Hypothesis strategies, driven here per operation, do the same work.
def test_no_input_causes_a_server_error(fuzzed_api):
    schema = schemathesis.openapi.from_url(f"{fuzzed_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 21
    tried: dict[str, int] = {}
    for operation in operations:
        for mode in MODES:
            fuzz(operation, mode, fuzzed_api.url, tried)
    assert all(tried.get(op.label) for op in operations), tried
