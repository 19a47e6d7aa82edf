"""OpenAI-compatible API: ``/v1/models`` and ``/v1/embeddings``. ``/v1/chat/completions``, the hot
path, is a bare ASGI endpoint of its own (``chat_completions.py``)."""

from __future__ import annotations

import base64
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request

from noosphere.errors import ModelNotFound
from noosphere.pool.gateway import Gateway
from noosphere.server.deps import NodeDep, PrincipalDep, gateway_of
from noosphere.server.openai_wire import EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["openai"])
T = TypeVar("T")
CONVERSATION_HEADER = "X-Conversation-Id"


async def get_gateway(request: Request) -> Gateway:  # async: see ``deps.get_runtime``
    return gateway_of(request.app)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@router.get("/models", summary="Models with live capacity (workers or upstreams), aliases included")
async def list_models(gateway: GatewayDep, _: PrincipalDep) -> dict[str, Any]:
    data = []
    for model in gateway.models():
        entry = {
            "id": model.id,
            "object": "model",
            "created": 0,
            "owned_by": "noosphere",
            "workers": model.workers,
            "upstreams": model.upstreams,
            "slots": model.slots,
            "free_slots": model.free_slots,
            "context_length": model.context_length,
        }
        data.append(entry)
        data.extend({**entry, "id": alias, "alias_of": model.id} for alias in model.aliases)
    return {"object": "list", "data": data}


@router.post("/embeddings", summary="Embeddings from the node's embedder")
async def embeddings(
    body: EmbeddingRequest, node: NodeDep, gateway: GatewayDep, _: PrincipalDep
) -> dict[str, Any]:
    embedder = node.memory.embedder
    names = {embedder.model_id, embedder.model_id.rsplit("/", 1)[-1], "default"}
    if body.model not in names:
        raise ModelNotFound(
            f"this node embeds with {embedder.model_id!r}; model {body.model!r} is not served"
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    vectors = await node.memory.embed(texts)
    data = []
    for i, vector in enumerate(vectors):
        value: Any = (
            base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else vector.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(gateway.counter.text(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": embedder.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
