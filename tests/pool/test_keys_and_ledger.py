"""User API keys against the gateway: limits, budgets, revocation, and the ledger they feed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.testing import FakeModel, until
from tests.integration.conftest import free_port
from tests.pool.conftest import Gateway, serve

HELLO = [{"role": "user", "content": "Say something"}]


@pytest.fixture
def node(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Gateway]:
    settings = load_settings(None, data_dir=tmp_path / "node", server={"port": free_port()})
    yield from serve(settings, minilm, {"fake": FakeModel("fake", reply="four words of reply")})


def cli(node: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOOSPHERE_DATA_DIR": str(node.settings.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "noosphere", *args], env=env, capture_output=True, text=True, timeout=120
    )


def new_key(node: Gateway, *limits: str) -> str:
    if cli(node, "user", "list", "--json").stdout.strip() in ("", "[]"):
        cli(node, "user", "create", "ann")
    created = cli(node, "key", "create", "ann", *limits, "--json")
    assert created.returncode == 0, created.stderr
    key: str = json.loads(created.stdout)["key"]
    return key


def api(node: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=node.url + "/v1", api_key=key, max_retries=0)


def test_an_api_key_acts_as_its_user_and_pays_from_its_own_account(node: Gateway) -> None:
    key = new_key(node)
    with api(node, key) as client:
        answer = client.chat.completions.create(model="fake", messages=HELLO)
    assert answer.choices[0].message.content == "four words of reply"
    (row,) = json.loads(cli(node, "key", "list", "--json").stdout)
    assert row["spent"] > 0
    by_worker = json.loads(cli(node, "usage", "--by", "worker", "--json").stdout)
    assert by_worker == [
        {
            "worker": "local:fake",
            "requests": 1,
            "prompt_tokens": answer.usage.prompt_tokens,  # type: ignore[union-attr]
            "completion_tokens": answer.usage.completion_tokens,
            "credits": row["spent"],
        }
    ]  # type: ignore[union-attr]
    by_principal = json.loads(cli(node, "usage", "--by", "principal", "--json").stdout)
    assert by_principal[0]["principal"] == "user:ann"


def test_requests_per_minute_are_limited_with_retry_after(node: Gateway) -> None:
    key = new_key(node, "--rpm", "2")
    with api(node, key) as client:
        client.chat.completions.create(model="fake", messages=HELLO)
        client.chat.completions.create(model="fake", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="fake", messages=HELLO)
    assert caught.value.code == "rate_limited"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_tokens_per_minute_are_limited(node: Gateway) -> None:
    key = new_key(node, "--tpm", "30")
    long_prompt = [{"role": "user", "content": "word " * 50}]
    with api(node, key) as client, pytest.raises(openai.RateLimitError, match="tokens per minute"):
        client.chat.completions.create(model="fake", messages=long_prompt)


def test_a_budget_is_never_overspent_and_its_last_answer_is_cut_to_fit(node: Gateway) -> None:
    key = new_key(node, "--budget", "24")
    with api(node, key) as client:
        whole = client.chat.completions.create(model="fake", messages=HELLO)  # 6 prompt + 2 x 4 credits
        assert whole.choices[0].finish_reason == "stop"
        cut = client.chat.completions.create(model="fake", messages=HELLO)  # 10 left: 6 + 2 x 2
        assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == ("four words", "length")
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.chat.completions.create(model="fake", messages=HELLO)
    assert caught.value.code == "budget_exhausted"
    (row,) = json.loads(cli(node, "key", "list", "--json").stdout)
    assert row["spent"] == 24


def test_a_revoked_key_stops_working(node: Gateway) -> None:
    key = new_key(node)
    (row,) = json.loads(cli(node, "key", "list", "--json").stdout)
    assert cli(node, "key", "revoke", row["id"]).returncode == 0
    with api(node, key) as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="fake", messages=HELLO)


def test_the_ledger_balances_and_records_both_counts(node: Gateway) -> None:
    headers = {"Authorization": f"Bearer {node.token}"}
    for _ in range(3):
        httpx.post(
            node.url + "/v1/chat/completions", headers=headers, json={"model": "fake", "messages": HELLO}
        ).raise_for_status()

    async def books() -> tuple[float, float, list[tuple[int, int, int, int]]]:
        from noosphere.node import open_node

        async with open_node(node.settings, embedder=FakeEmbedderForReading()) as opened:
            spent = await opened.store.balance("principal:admin")
            earned = await opened.store.balance("local:fake")
            rows = await opened.store.usage_summary("model", None)
            return (
                spent,
                earned,
                [(r.requests, r.prompt_tokens, r.completion_tokens, int(r.credits)) for r in rows],
            )

    # Usage is written off the request path, in batches: wait for all three requests.
    until(lambda: sum(r[0] for r in anyio.run(books)[2]) == 3, "the three requests are in the books")
    spent, earned, rows = anyio.run(books)
    assert spent == -earned
    assert earned > 0
    ((requests, prompt, completion, credits),) = rows
    assert requests == 3
    assert credits == prompt + 2 * completion


class FakeEmbedderForReading:
    """Opening the node's store to read the books needs an embedder with the stored identity."""

    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    dimension = 384

    def embed(self, texts: object) -> object:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


SECRET = "bea's own conversation secret"


def test_a_conversation_is_kept_for_a_user_who_opted_in_as_encrypted_memory(node: Gateway) -> None:
    created = cli(node, "user", "create", "bea", "--conversations", "--json")
    token = json.loads(created.stdout)["token"]
    with api(node, token) as client:
        for question in ("first question", "first question"):
            raw = client.chat.completions.with_raw_response.create(
                model="fake",
                messages=[{"role": "user", "content": question}],
                extra_headers={"X-Conversation-Id": "conv-42", "X-Noosphere-Secret": SECRET},
            )
            assert raw.headers["x-conversation-id"] == "conv-42"
        # Without her secret, nothing of an exchange can be sealed for her: it is not kept.
        client.chat.completions.create(
            model="fake",
            messages=[{"role": "user", "content": "not kept"}],
            extra_headers={"X-Conversation-Id": "conv-42"},
        )

    def mine() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = httpx.get(
            node.url + "/api/v1/memories",
            params={"thread_id": "conv-42"},
            headers={"Authorization": f"Bearer {token}", "X-Noosphere-Secret": SECRET},
        ).json()["items"]
        return items

    assert len(mine()) == 4, "both exchanges were stored before their answers completed"
    assert [(m["metadata"]["role"], m["content"]) for m in mine()] == [
        ("user", "first question"),
        ("assistant", "four words of reply"),
        ("user", "first question"),
        ("assistant", "four words of reply"),
    ]
    assert all(m["kind"] == "conversation" and m["zone"] == "private" for m in mine())
    assert all(m["expires_at"] is not None for m in mine())  # pool.conversation_ttl_days
    admin_view = httpx.get(
        node.url + "/api/v1/memories",
        params={"thread_id": "conv-42"},
        headers={"Authorization": f"Bearer {node.token}"},
    ).json()["items"]
    assert len(admin_view) == 4
    assert all(m["encrypted"] and "question" not in m["content"] for m in admin_view)


def test_nothing_is_kept_of_a_conversation_without_opting_in(node: Gateway) -> None:
    key = new_key(node)  # a key (of ann) without --conversations
    token = json.loads(cli(node, "user", "create", "cy", "--json").stdout)["token"]
    for credential in (token, key, node.token):
        with api(node, credential) as client:
            client.chat.completions.create(
                model="fake", messages=HELLO, extra_headers={"X-Conversation-Id": "conv-7"}
            )
    kept = httpx.get(
        node.url + "/api/v1/memories",
        params={"thread_id": "conv-7"},
        headers={"Authorization": f"Bearer {node.token}"},
    ).json()["items"]
    assert kept == []


def test_concurrent_requests_never_spend_past_a_budget(node: Gateway) -> None:
    key = new_key(node, "--budget", "150")
    outcomes: list[str] = []

    async def one(client: httpx.AsyncClient) -> None:
        body = {"model": "fake", "messages": HELLO, "max_tokens": 4}
        answer = await client.post("/v1/chat/completions", json=body)
        outcomes.append("ok" if answer.status_code == 200 else answer.json()["error"]["code"])

    async def burst() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=node.url, headers=headers, timeout=30) as client:
            for _ in range(4):  # waves of 10 at once, until the budget is gone
                async with anyio.create_task_group() as group:
                    for _ in range(10):
                        group.start_soon(one, client)

    anyio.run(burst)
    (row,) = json.loads(cli(node, "key", "list", "--json").stdout)
    # 14 credits each: ten fit in 150, and an eleventh cut to the 10 credits left; never more.
    assert (row["spent"], outcomes.count("ok")) == (150, 11)
    assert set(outcomes) <= {"ok", "budget_exhausted", "rate_limited"}
