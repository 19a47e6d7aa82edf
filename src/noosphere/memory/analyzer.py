"""What full-text search indexes, and the terms it looks for: the same analysis on both sides.

Words are lowercased; function words ("the", "did", "my") are dropped, since every chat line has
them and an OR query full of them floods the BM25 list with look-alikes; with stemming (the
default, ``memory.stemming``) each word is reduced to its Snowball English stem, so "married"
finds "marry" and "allergic" finds "allergy". The analysis happens here, in Python, rather than
in each database's own tokenizer, so SQLite and PostgreSQL index exactly the same terms and the
rare-term pruning (``ranking.prune_terms``) counts the terms a query really asks for.

A thread's turn is indexed with the turns around it (a chat line rarely stands alone) and with
the date it was said, spelled out ("14 March 2023 Tuesday"), so a question naming a day can
find what was said on it. The store records which analysis built its index (``FORMAT``); a store
indexed another way is indexed again when it opens (``MemoryService.check_index``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime

import snowballstemmer

MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORD_LIST = """
a an and are as at be been but by can could did do does for from get got had has have he her him
his how i if in into is it its me my of on or our she should so than that the their them then there
these they this those to was we were what when where which who whom why will with would you your
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())
_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    # Snowball is pure Python here (~50 µs a word); chat vocabulary repeats, so a cache makes it free.
    return str(_STEMMER.stemWord(word))


def words(text: str) -> list[str]:
    """The text's words, lowercased, in order (function words included)."""
    return [m.group(0) for m in _WORD.finditer(text.lower())]


class Analyzer:
    def __init__(self, stemming: bool = True) -> None:
        self.stemming = stemming

    @property
    def format(self) -> str:
        """Names the analysis, as recorded in a store's index."""
        return "snowball-en-1" if self.stemming else "words-1"

    def _term(self, word: str) -> str:
        return _stem(word) if self.stemming else word

    def terms(self, text: str, drop_function_words: bool = True) -> list[str]:
        """A query's terms: de-duplicated in order, function words dropped (unless the query has
        nothing else), at most ``MAX_TERMS``."""
        found = words(text)
        content = [w for w in found if w not in STOPWORDS] if drop_function_words else found
        return list(dict.fromkeys(self._term(w) for w in content or found))[:MAX_TERMS]

    def index(self, content: str, context: Sequence[str] = (), said: datetime | None = None) -> str:
        """What to index for ``content``: its terms, its neighbours' (``context``) and the date
        it was said, if given."""
        parts = [*context, content]
        if said is not None:
            parts.append(f"{said.day} {said:%B %Y %A}")
        return " ".join(self._term(w) for part in parts for w in words(part) if w not in STOPWORDS)


__all__ = ["MAX_TERMS", "STOPWORDS", "Analyzer", "words"]
