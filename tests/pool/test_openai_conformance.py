"""The gateway through the official ``openai`` client, sync and async, over a real socket."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import openai
import pytest

from noosphere.embeddings.minilm import MiniLMEmbedder
from tests.pool.conftest import TOOL_CALLS, Gateway

TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
HELLO = [{"role": "user", "content": "Say something"}]


@pytest.fixture
def api(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.token, max_retries=0) as sync_client:
        yield sync_client


@pytest.fixture
async def aapi(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.token, max_retries=0) as c:
        yield c


def test_a_whole_completion(gateway: Gateway, api: openai.OpenAI) -> None:
    raw = api.chat.completions.with_raw_response.create(model="fake", messages=HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content == "The quick brown fox jumps over the lazy dog"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert completion.usage.prompt_tokens > 0
    assert raw.headers["x-conversation-id"].startswith("conv_")


def test_a_streamed_completion(gateway: Gateway, api: openai.OpenAI) -> None:
    chunks = list(api.chat.completions.create(model="fake", messages=HELLO, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "The quick brown fox jumps over the lazy dog"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_include_usage_adds_a_final_usage_chunk(gateway: Gateway, api: openai.OpenAI) -> None:
    chunks = list(
        api.chat.completions.create(
            model="fake", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (
        chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    )
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_the_wire_has_data_lines_only_and_ends_with_done(gateway: Gateway, api: openai.OpenAI) -> None:
    body = {"model": "fake", "messages": HELLO, "stream": True}
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.token}"},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def test_streamed_parallel_tool_calls(gateway: Gateway, api: openai.OpenAI) -> None:
    chunks = list(api.chat.completions.create(model="toolbot", messages=HELLO, tools=TOOLS, stream=True))  # type: ignore[arg-type]
    seen: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert isinstance(call.index, int)
            if call.index not in seen:
                assert call.id
                assert call.function is not None
                assert call.function.name
                seen[call.index] = {"id": call.id, "name": call.function.name, "arguments": ""}
            else:
                assert call.id is None
                assert call.function is not None
                assert call.function.name is None
            seen[call.index]["arguments"] += call.function.arguments or ""
    assert sorted(seen) == [0, 1]
    assert len({c["id"] for c in seen.values()}) == 2
    assert [(seen[i]["name"], json.loads(seen[i]["arguments"])) for i in (0, 1)] == [
        (name, json.loads(args)) for name, args in TOOL_CALLS
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_whole_tool_calls(gateway: Gateway, api: openai.OpenAI) -> None:
    completion = api.chat.completions.create(model="toolbot", messages=HELLO, tools=TOOLS)  # type: ignore[arg-type]
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        (name, json.loads(args)) for name, args in TOOL_CALLS
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_max_tokens_cuts_with_finish_length(gateway: Gateway, api: openai.OpenAI) -> None:
    completion = api.chat.completions.create(model="fake", messages=HELLO, max_tokens=3)
    assert completion.choices[0].message.content == "The quick brown"
    assert completion.choices[0].finish_reason == "length"


def test_aliases_are_listed_and_served(gateway: Gateway, api: openai.OpenAI) -> None:
    models = {m.id: m for m in api.models.list()}
    assert {"fake", "smol", "toolbot", "slow", "crashy"} <= set(models)
    assert models["smol"].model_extra is not None
    assert models["smol"].model_extra["alias_of"] == "fake"
    assert models["fake"].model_extra is not None
    assert models["fake"].model_extra["free_slots"] == 1
    completion = api.chat.completions.create(model="smol", messages=HELLO)
    assert completion.model == "smol"


def test_unknown_models_are_404_and_never_substituted(gateway: Gateway, api: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        api.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert "fake" in caught.value.message


def test_bad_credentials_are_401(gateway: Gateway, api: openai.OpenAI) -> None:
    with (
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="ns_nope", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.chat.completions.create(model="fake", messages=HELLO)


def test_invalid_requests_are_structured_errors(gateway: Gateway, api: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="fake", messages=HELLO, n=2)
    assert "n must be 1" in caught.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        api.chat.completions.create(model="fake", messages=[])
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {gateway.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_worker_dying_mid_stream_is_an_in_stream_error(gateway: Gateway, api: openai.OpenAI) -> None:
    stream = api.chat.completions.create(model="crashy", messages=HELLO, stream=True)
    received: list[str] = []

    def consume() -> None:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError, match="crashed"):
        consume()
    assert "".join(received) == "one two"  # what came before the crash, never a silent end


def test_a_worker_dying_before_a_whole_answer_is_a_502(gateway: Gateway, api: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        api.chat.completions.create(model="crashy", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.code == "worker_crashed"


def test_client_disconnect_cancels_the_job_on_the_worker(gateway: Gateway, api: openai.OpenAI) -> None:
    slow = gateway.models["slow"]
    stream = api.chat.completions.create(model="slow", messages=HELLO, stream=True)
    next(iter(stream))
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 10
    while not slow.closed_early:
        assert time.monotonic() < deadline, "the worker kept generating for a departed client"
        time.sleep(0.05)
    assert slow.closed_early == slow.started


def test_every_chat_gives_its_slot_back_however_it_ends(gateway: Gateway, api: openai.OpenAI) -> None:
    """Chats hold a slot of the scheduler's limit on running chats (``interactive.py``) until
    their answer is out: a slot kept by an ended chat would hold the others back for good."""
    scheduler = gateway.app.state.gateway.scheduler
    api.chat.completions.create(model="fake", messages=HELLO)
    list(api.chat.completions.create(model="fake", messages=HELLO, stream=True))
    with pytest.raises(openai.APIError):
        list(api.chat.completions.create(model="crashy", messages=HELLO, stream=True))
    with pytest.raises(openai.APIStatusError):
        api.chat.completions.create(model="crashy", messages=HELLO)
    gone = api.chat.completions.create(model="slow", messages=HELLO, stream=True)
    next(iter(gone))
    gone.close()
    deadline = time.monotonic() + 10
    while scheduler.bulk_running or scheduler.jobs:
        assert time.monotonic() < deadline, f"{scheduler.bulk_running} slots still held"
        time.sleep(0.02)


async def test_async_client_and_saturation(aapi: openai.AsyncOpenAI) -> None:
    stream = await aapi.chat.completions.create(model="fake", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "The quick brown fox jumps over the lazy dog"

    # One slow slot, a queue of two, a one-second queue timeout: the first runs, two wait and
    # time out with 503 + Retry-After, a fourth is refused at once with 429 + Retry-After.
    async def ask() -> object:
        try:
            return await aapi.chat.completions.create(model="slow", messages=HELLO)
        except openai.APIStatusError as exc:
            return exc

    first = asyncio.create_task(ask())
    await asyncio.sleep(0.2)
    waiting = [asyncio.create_task(ask()) for _ in range(2)]
    await asyncio.sleep(0.2)
    refused = await ask()
    assert isinstance(refused, openai.RateLimitError)
    assert refused.response.headers["retry-after"]
    timed_out = await asyncio.gather(*waiting)
    assert all(isinstance(r, openai.InternalServerError) and r.status_code == 503 for r in timed_out)
    assert all(r.response.headers["retry-after"] for r in timed_out)  # type: ignore[attr-defined]
    assert not isinstance(await first, Exception)


def test_embeddings_through_the_client(api: openai.OpenAI, minilm: MiniLMEmbedder) -> None:
    result = api.embeddings.create(model="all-MiniLM-L6-v2", input=["green tea", "coffee"])
    vectors = np.asarray([d.embedding for d in result.data], dtype=np.float32)
    np.testing.assert_allclose(vectors, minilm.embed(["green tea", "coffee"]), atol=1e-5)
    as_floats = api.embeddings.create(model="default", input="green tea", encoding_format="float")
    assert len(as_floats.data[0].embedding) == 384
    with pytest.raises(openai.NotFoundError):
        api.embeddings.create(model="text-embedding-3-large", input="x")


def test_oversized_requests_are_refused_before_reading(gateway: Gateway) -> None:
    huge = [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "fake", "messages": huge},
        headers={"Authorization": f"Bearer {gateway.token}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_prompts_beyond_every_context_are_refused_at_once(gateway: Gateway, api: openai.OpenAI) -> None:
    too_long = [{"role": "user", "content": "word " * 5000}]  # fake's context is 4096 tokens
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="fake", messages=too_long)  # type: ignore[arg-type]
    assert caught.value.code == "context_length_exceeded"


def test_the_client_retries_after_503_and_then_succeeds(gateway: Gateway) -> None:
    # "slow" runs one job at a time for about two seconds. While it is busy, a second request
    # waits out the one-second queue deadline, gets 503 + Retry-After, and the official client
    # (with retries on) tries again until the worker is free.
    statuses: list[int] = []
    hooks = {"response": [lambda response: statuses.append(response.status_code)]}
    busy = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.token, max_retries=0)
    stream = busy.chat.completions.create(model="slow", messages=HELLO, stream=True)
    first = iter(stream)
    next(first)  # the worker is now running it
    drain = threading.Thread(target=lambda: list(first))
    drain.start()
    with (
        httpx.Client(event_hooks=hooks) as http,
        openai.OpenAI(
            base_url=gateway.url + "/v1", api_key=gateway.token, max_retries=5, http_client=http
        ) as patient,
    ):
        completion = patient.chat.completions.create(model="slow", messages=HELLO, max_tokens=3)
    drain.join(timeout=30)
    busy.close()
    assert completion.choices[0].message.content == "w0 w1 w2"
    assert statuses[0] == 503 and statuses[-1] == 200, statuses


def test_other_methods_and_oversized_streamed_bodies_are_refused(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.token}"}
    wrong = httpx.get(gateway.url + "/v1/chat/completions", headers=headers)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == "method_not_allowed"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"model": "fake", "messages": [{"role": "user", "content": "'
        for _ in range(gateway.settings.server.max_body_bytes // 65536 + 1):
            yield b"x" * 65536
        yield b'"}]}'

    big = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, content=chunked(), timeout=30)
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
