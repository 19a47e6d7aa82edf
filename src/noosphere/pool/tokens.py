"""The gateway's own token count. Workers report usage too, but billing and fairness must not
depend on what a worker says, so the gateway counts with a tokenizer it owns: the WordPiece
vocabulary shipped with the default embedder (30k entries). It is not the model's tokenizer, so it
is an estimate of the model's count (within ~20% for English); it is the same estimate for every
worker and every request, which is what the ledger needs. Workers' own counts are kept beside it."""

from __future__ import annotations

import json

from tokenizers import Tokenizer

from noosphere.embeddings.minilm import bundled_model_dir
from noosphere.pool.protocol import JobRequest

PER_MESSAGE = 4  # role and separators, as chat templates add them


class TokenCounter:
    def __init__(self) -> None:
        self._tokenizer = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def text(self, text: str) -> int:
        if not text:
            return 0
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def prompt(self, request: JobRequest) -> int:
        total = 0
        for message in request.messages:
            content = message.get("content")
            if isinstance(content, list):  # content parts: count the text ones
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            total += PER_MESSAGE + self.text(content or "")
            for call in message.get("tool_calls") or []:
                total += self.text(json.dumps(call.get("function", {})))
        if request.tools:
            total += self.text(json.dumps(request.tools))
        return total
