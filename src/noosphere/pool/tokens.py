"""The gateway's own token count. Workers report usage too, but billing and fairness must not
depend on what a worker says, so the gateway counts with a tokenizer it owns: the WordPiece
vocabulary shipped with the default embedder (30k entries). It is not the model's tokenizer, so it
is an estimate of the model's count (within ~20% for English); it is the same estimate for every
worker and every request, which is what the ledger needs. Workers' own counts are kept beside it."""

from __future__ import annotations

import json
import re

from tokenizers import Tokenizer

from noosphere.embeddings.minilm import bundled_model_dir
from noosphere.pool.protocol import JobRequest

PER_MESSAGE = 4  # role and separators, as chat templates add them
_WORDS_CACHED = 50_000

# For ASCII text the tokenizer's normalizer drops control characters (tab, newline and carriage
# return are whitespace) and lowercases; its pre-tokenizer splits on whitespace and makes each
# punctuation character a word of its own; WordPiece then splits each word on its own.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")


class TokenCounter:
    def __init__(self) -> None:
        self._tokenizer = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._words: dict[str, int] = {}

    def text(self, text: str) -> int:
        if not text:
            return 0
        if not text.isascii():
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        # The same count, word by word from a cache: a full encode builds offsets and masks for
        # every call, which costs the gateway more per request than the rest of its accounting.
        total = 0
        words = self._words
        for word in _ASCII_WORD.findall(text if text.isprintable() else _CONTROL.sub("", text)):
            count = words.get(word)
            if count is None:
                count = len(self._tokenizer.encode(word, add_special_tokens=False).ids)
                if len(words) >= _WORDS_CACHED:  # many distinct words: start the cache afresh
                    words.clear()
                words[word] = count
            total += count
        return total

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
