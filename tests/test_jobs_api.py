"""The job API under /_taskpack/jobs: shapes, errors and the access policy,
through the HTTP core (the built-server tests drive it over real HTTP)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from taskpack import Registry, define_task
from taskpack.http import HttpRequest, HttpResponse, TaskApi, bearer_token, handle
from taskpack.store import Store
from taskpack.web.jobs import JobsApi


class Order(pydantic.BaseModel):
    id: int


def make_api(tmp_path: Path) -> tuple[TaskApi, Store]:
    registry = Registry.of({"ship": define_task(lambda e: e.payload.id, payload_schema=Order)},
                           tmp_path)
    api = TaskApi(registry, policy=bearer_token("s3cret"),
                  extensions=[JobsApi(lambda: api.registry)])
    return api, registry.store


def call(api: TaskApi, method: str, path: str, body: Any = None, *, token: str = "s3cret",
         query: list[tuple[str, str]] | None = None) -> HttpResponse:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = HttpRequest(method, path, query or [], {"authorization": f"Bearer {token}"}, raw)

    async def go() -> HttpResponse:
        response = await handle(api, request)
        assert response is not None
        return response

    return asyncio.run(go())


@pytest.fixture
def api(tmp_path: Path) -> TaskApi:
    api, store = make_api(tmp_path)
    asyncio.run(store.open())
    return api


def test_enqueue_list_show_cancel_retry(api: TaskApi) -> None:
    created = call(api, "POST", "/_taskpack/jobs",
                   {"task": "ship", "payload": {"id": 7}, "delay": 60, "key": "order-7"})
    assert created.status == 202
    body = created.json()
    assert set(body) == {"id", "status", "run_at"} and body["status"] == "pending"
    job_id = body["id"]
    again = call(api, "POST", "/_taskpack/jobs",
                 {"task": "ship", "payload": {"id": 8}, "key": "order-7", "queue": "ships"})
    assert again.json()["id"] == job_id  # replaced by key
    shown = call(api, "GET", f"/_taskpack/jobs/{job_id}").json()
    assert shown["payload"] == {"id": 8} and shown["queue"] == "ships"
    listed = call(api, "GET", "/_taskpack/jobs", query=[("status", "pending"), ("task", "ship")])
    assert [job["id"] for job in listed.json()["jobs"]] == [job_id]
    assert listed.json()["next_cursor"] is None
    assert call(api, "POST", f"/_taskpack/jobs/{job_id}/retry").status == 409
    cancelled = call(api, "POST", f"/_taskpack/jobs/{job_id}/cancel")
    assert cancelled.status == 200 and cancelled.json()["status"] == "cancelled"
    assert call(api, "POST", f"/_taskpack/jobs/{job_id}/cancel").status == 409
    retried = call(api, "POST", f"/_taskpack/jobs/{job_id}/retry")
    assert retried.status == 200 and retried.json()["status"] == "pending"


def test_errors(api: TaskApi) -> None:
    unknown = call(api, "POST", "/_taskpack/jobs", {"task": "nope"})
    assert unknown.status == 404 and unknown.json()["message"] == "Task `nope` is not available!"
    refused = call(api, "POST", "/_taskpack/jobs", {"task": "ship", "payload": {"id": "x"}})
    assert refused.status == 422 and refused.json()["errors"][0]["field"] == "id"
    for body, says in ((b"{", "not valid JSON"), ([1], "JSON object"), ({}, '"task"'),
                       ({"task": "ship", "colour": 1}, "unknown field 'colour'"),
                       ({"task": "ship", "payload": [1]}, '"payload" must be a JSON object'),
                       ({"task": "ship", "payload": {"id": 1}, "delay": "soon"}, '"delay"'),
                       ({"task": "ship", "payload": {"id": 1}, "delay": 1, "run_at": 5},
                        "not both"),
                       ({"task": "ship", "payload": {"id": 1}, "run_at": "tomorrow"},
                        "ISO 8601")):
        bad = call(api, "POST", "/_taskpack/jobs", body)
        assert bad.status == 400 and says in bad.json()["message"], (body, bad.json())
    assert call(api, "GET", "/_taskpack/jobs/nope").status == 404
    assert call(api, "POST", "/_taskpack/jobs/nope/retry").status == 404
    assert call(api, "GET", "/_taskpack/jobs", query=[("status", "odd")]).status == 400
    assert call(api, "GET", "/_taskpack/jobs", query=[("limit", "0")]).status == 400
    assert call(api, "DELETE", "/_taskpack/jobs").status == 405
    assert call(api, "GET", "/_taskpack/jobs/x/retry").status == 405
    assert call(api, "POST", "/_taskpack/jobs/x/explode").status == 404
    assert call(api, "GET", "/_taskpack/jobs", token="wrong").status == 401
