"""How an upstream's SSE stream becomes chunks: text deltas that arrive in one read travel as one
chunk that counts their tokens; tool calls keep their order; what precedes a bad event still goes
out before the error."""

from __future__ import annotations

import json

import pytest

from noosphere.pool.backends.base import BackendError
from noosphere.pool.backends.openai_compat import _chunks, _data, _Ending, _parse


def sse(*events: object) -> list[bytes]:
    """The ``data:`` payloads of one read, as the upstream sent them."""
    lines = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    return [d for line in lines.split(b"\n") if (d := _data(line)) is not None]


def delta(**fields: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


@pytest.fixture
def ending() -> _Ending:
    return _Ending()


def test_text_of_one_read_is_one_chunk_of_that_many_tokens(ending: _Ending) -> None:
    events, error = _parse(
        sse(delta(role="assistant", content=""), *(delta(content=f" w{i}") for i in range(5)))
    )
    assert error is None
    (chunk,) = _chunks("job", events, ending)
    assert (chunk.content, chunk.tokens) == (" w0 w1 w2 w3 w4", 5)


def test_tool_calls_keep_their_place_between_texts(ending: _Ending) -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    events, _ = _parse(
        sse(
            delta(content="a"),
            delta(content="b"),
            delta(tool_calls=[call]),
            delta(content="c"),
            finish,
            usage,
        )
    )
    chunks = _chunks("job", events, ending)
    assert [(c.content, c.tokens, c.tool_call.name if c.tool_call else None) for c in chunks] == [
        ("ab", 2, None),
        (None, 1, "f"),
        ("c", 1, None),
    ]
    assert ending.finish == "tool_calls"
    assert (ending.usage.prompt_tokens, ending.usage.completion_tokens) == (7, 3)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"choices": [', "malformed JSON"),
        (b"[1, 2]", "malformed JSON"),
        (json.dumps({"error": {"message": "overloaded"}}).encode(), "overloaded"),
    ],
)
def test_what_precedes_a_bad_event_goes_out_before_the_error(
    bad: bytes, message: str, ending: _Ending
) -> None:
    texts = sse(delta(content="first"), delta(content=" second"))
    events, error = _parse([*texts, bad, *sse(delta(content="never"))])
    assert isinstance(error, BackendError) and message in error.message
    assert [c.content for c in _chunks("job", events, ending)] == ["first second"]


def test_non_text_content_is_refused(ending: _Ending) -> None:
    events, _ = _parse(sse(delta(content=["parts"])))
    with pytest.raises(BackendError, match="non-text"):
        _chunks("job", events, ending)
