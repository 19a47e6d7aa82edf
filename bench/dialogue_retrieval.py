"""Memory search over long conversations (``bench/dialogues.py``): recall@5 and recall@10 of the
evidence turns, overall and per category, for full-text search alone, vector search alone and
noosphere's hybrid search, under each indexing variant, all in one run on SQLite.

Each conversation is one user's memory (its turns stored as messages, each session a thread, at
its session's date), so a question searches only the conversation it is about. Recall of a
question is the share of its evidence turns in the top k (a multi-hop question found half-way
scores 0.5). No-answer questions have no evidence: they are counted, not scored. Conversations
``0..SPLIT-1`` are the tuning split (fusion weights are chosen there); the table reports the
others.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.dialogues import CATEGORIES, Dialogues, Question, generate
from bench.report import write_section
from noosphere.auth.principal import Principal, PrincipalKind
from noosphere.config import MemorySettings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.memory.model import Filters, MemoryDraft, SearchQuery
from noosphere.memory.ranking import (
    DAY_WEIGHT,
    HYBRID_K,
    RARE_TEXT_WEIGHT,
    TEXT_WEIGHT,
    text_weight,
    weighted_rrf,
)
from noosphere.memory.service import MemoryService
from noosphere.store.contract import Viewer
from noosphere.store.sqlite import SQLiteStore

KS = (5, 10)
DEPTH = 50  # candidates per list, as the search takes them
SPLIT = 4  # conversations 0..3 tune, the rest are reported
SCORED = [c for c in CATEGORIES if c != "no-answer"]


class MemoEmbedder:
    """The real embedder, with each distinct text embedded once across the variants."""

    def __init__(self, embedder: MiniLMEmbedder) -> None:
        self.embedder = embedder
        self.model_id, self.dimension = embedder.model_id, embedder.dimension
        self._seen: dict[str, NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self._seen[text] = vector
        return np.stack([self._seen[t] for t in texts]) if texts else self.embedder.embed([])


@dataclass(frozen=True)
class Variant:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    next_turn: bool = False  # also index the turn after each one (tried here before building it)


BEFORE = {"stemming": False, "index_dates": False, "embed_context_words": 0}
VARIANTS = [
    Variant("as before: words, previous turn", BEFORE),
    Variant("+ stemming", {**BEFORE, "stemming": True}),
    Variant("+ stemming, dates", {**BEFORE, "stemming": True, "index_dates": True}),
    Variant("+ short turns embedded with context (as shipped)", {}),
    Variant("  no text context", {"context_turns": 0}),
    Variant("  short below 6 words", {"embed_context_words": 6}),
    Variant("  short below 12 words", {"embed_context_words": 12}),
    Variant("  + next turn in the full-text entry", {}, next_turn=True),
]
SHORT_TURNS = [VARIANTS[2], VARIANTS[5], VARIANTS[3], VARIANTS[6]]  # never, 6, 9 (shipped), 12


def _owner(conversation: int) -> Principal:
    return Principal(id=f"user:c{conversation}", kind=PrincipalKind.USER, name=f"c{conversation}")


async def _ingest(service: MemoryService, data: Dialogues) -> dict[str, str]:
    """Every turn as a message of its session's thread; memory id → turn id."""
    turn_of: dict[str, str] = {}
    for conversation in data.conversations:
        owner = _owner(conversation.index)
        for session in conversation.sessions:
            drafts = [
                MemoryDraft(content=t.content, kind="message", thread_id=t.session, valid_at=t.at)
                for t in session
            ]
            for turn, memory in zip(session, await service.store_many(owner, drafts), strict=True):
                turn_of[memory.id] = turn.id
    return turn_of


async def _index_next_turns(service: MemoryService, data: Dialogues, turn_of: dict[str, str]) -> None:
    """Index each turn with the one after it too (what the service would do if this paid)."""
    memory_of = {turn: memory for memory, turn in turn_of.items()}
    turns = service.settings.context_turns
    texts = []
    for conversation in data.conversations:
        for session in conversation.sessions:
            for i, turn in enumerate(session):
                around = [t.content for t in session[max(0, i - turns) : i + 2] if t is not turn]
                texts.append((memory_of[turn.id], service.analyzer.index(turn.content, around, turn.at)))
    await service.store.reindex(texts, erase_traces=False)


@dataclass
class Lists:
    """One question's candidate lists (memory ids, best first), as the search builds them."""

    vector: list[str]
    text: list[str]
    day: list[str]
    shipped: list[str]  # the search's own answer
    rarest: int | None  # memories holding the query's rarest word


async def _lists(service: MemoryService, question: Question) -> Lists:
    owner = _owner(question.conversation)
    viewer, now, filters = Viewer(owner.id), datetime.now(UTC), Filters()
    query = SearchQuery(query=question.text, limit=max(KS))
    (vector,) = await service.embed([question.text])
    by_text = await service.store.text_candidates(
        service.analyzer.terms(question.text), viewer, filters, now, DEPTH
    )
    by_vector = await service.store.vector_candidates(vector, viewer, filters, now, DEPTH)
    by_day = await service.said_on_named_days(query, vector, viewer, now, DEPTH)
    shipped = await service.search_with_vector(owner, query, vector)
    return Lists(
        [c.id for c in by_vector],
        [c.id for c in by_text],
        [c.id for c in by_day],
        [h.memory.id for h in shipped],
        await service.store.rarest_term_count(service.analyzer.terms(question.text)),
    )


def _fused(lists: Lists, k: int, text: float, day: float) -> list[str]:
    """Weighted RRF; the BM25 list counts fully when the query has a rare word, as shipped."""
    if text_weight(lists.rarest) == RARE_TEXT_WEIGHT:
        text = RARE_TEXT_WEIGHT
    scores = weighted_rrf([(lists.vector, 1.0), (lists.text, text), (lists.day, day)], k)
    return sorted(scores, key=lambda i: scores[i], reverse=True)


def _methods(lists: Lists) -> dict[str, list[str]]:
    return {
        "full text": lists.text,
        "vector": lists.vector,
        "RRF k=60, two lists (before)": _fused(lists, 60, 1.0, 0.0),
        "weighted RRF, no day list": _fused(lists, HYBRID_K, TEXT_WEIGHT, 0.0),
        "hybrid (as shipped)": lists.shipped,
    }


def _recall(ranked: list[str], evidence: list[str], k: int) -> float:
    return len(set(ranked[:k]) & set(evidence)) / len(evidence)


async def run() -> None:
    data = generate()
    embedder = MemoEmbedder(MiniLMEmbedder())
    scores: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    tuning = ""
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            store = SQLiteStore(Path(tmp) / f"{VARIANTS.index(variant)}.db")
            await store.open()
            service = MemoryService(store, embedder, MemorySettings(**variant.settings), "bench")
            await service.check_embedder()
            turn_of = await _ingest(service, data)
            if variant.next_turn:
                await _index_next_turns(service, data, turn_of)
            found = [(q, await _lists(service, q)) for q in data.questions if q.evidence]
            for question, lists in found:
                if question.conversation < SPLIT:
                    value = _recall([turn_of[i] for i in lists.vector], question.evidence, 10)
                    scores[(variant.name, "vector")]["tuning@10"].append(value)
                    continue
                for method, ids in _methods(lists).items():
                    ranked = [turn_of[i] for i in ids]
                    for k in KS:
                        value = _recall(ranked, question.evidence, k)
                        scores[(variant.name, method)][f"all@{k}"].append(value)
                        scores[(variant.name, method)][f"{question.category}@{k}"].append(value)
            if not variant.settings:
                tuning = _tune(found, turn_of)
            await store.close()
    body = "\n\n".join([_report(data, scores), _short_turns(scores), tuning])
    write_section("dialogue_retrieval", "Memory search over long conversations", body)


def _short_turns(scores: dict[tuple[str, str], dict[str, list[float]]]) -> str:
    """How short a turn must be to be embedded with the one before it, chosen on the tuning split."""
    rows = [
        "| embedded with the turn before | tuning split vector recall@10 | reported split |",
        "|---|---|---|",
    ]
    for variant in SHORT_TURNS:
        values = scores[(variant.name, "vector")]
        limit = variant.settings.get("embed_context_words", MemorySettings().embed_context_words)
        label = "never" if limit == 0 else f"turns below {limit} words"
        tuning, reported = (sum(v) / len(v) for v in (values["tuning@10"], values["all@10"]))
        rows.append(f"| {label} | {tuning:.3f} | {reported:.3f} |")
    return "Short turns (vector search alone):\n\n" + "\n".join(rows)


def _tune(found: list[tuple[Question, Lists]], turn_of: dict[str, str]) -> str:
    """Fusion parameters chosen on the tuning split, then checked on the others."""

    def mean(split: bool, k: int, text: float, day: float) -> float:
        values = [
            _recall([turn_of[i] for i in _fused(lists, k, text, day)], q.evidence, 10)
            for q, lists in found
            if (q.conversation < SPLIT) == split
        ]
        return sum(values) / len(values)

    grid = [(k, t, d) for k in (5, 10, 20, 60) for t in (0.1, 0.2, 0.35, 0.5, 1.0) for d in (0.0, 1.0, 2.0)]
    tuned = {params: mean(True, *params) for params in grid}
    best = max(grid, key=lambda params: tuned[params])
    rows = [
        "| k | text weight | day weight | tuning split recall@10 | reported split recall@10 |",
        "|---|---|---|---|---|",
    ]
    for params in [*sorted(grid, key=lambda p: tuned[p], reverse=True)[:5], (60, 1.0, 0.0)]:
        rows.append(
            f"| {params[0]} | {params[1]} | {params[2]} | {tuned[params]:.3f} | {mean(False, *params):.3f} |"
        )
    return (
        f"Fusion tuned on conversations 0 to {SPLIT - 1} (weighted RRF over the vector, BM25 and "
        f"named-day lists; {len(grid)} settings): best k={best[0]}, text weight {best[1]}, day "
        f"weight {best[2]}; shipped: k={HYBRID_K}, text weight {TEXT_WEIGHT}, day weight "
        f"{DAY_WEIGHT}. The five best on the tuning split, and plain RRF (k=60, equal weights, no "
        "day list) for comparison:\n\n" + "\n".join(rows)
    )


def _report(data: Dialogues, scores: dict[tuple[str, str], dict[str, list[float]]]) -> str:
    turns = sum(len(c.turns) for c in data.conversations)
    counts = {c: sum(q.category == c for q in data.questions) for c in CATEGORIES}
    held = {c: sum(q.category == c and q.conversation >= SPLIT for q in data.questions) for c in CATEGORIES}
    header = "| indexing | method | recall@5 | recall@10 | " + " | ".join(f"{c} @10" for c in SCORED) + " |"
    lines = [header, "|---" * (4 + len(SCORED)) + "|"]
    for (variant, method), values in scores.items():
        mean = {name: sum(v) / len(v) for name, v in values.items()}
        lines.append(
            f"| {variant} | {method} | {mean['all@5']:.3f} | {mean['all@10']:.3f} | "
            + " | ".join(f"{mean[f'{c}@10']:.3f}" for c in SCORED)
            + " |"
        )
    return (
        f"Dataset: `bench/dialogues.py` (seed 13): {len(data.conversations)} conversations, {turns:,} "
        f"turns in {sum(len(c.sessions) for c in data.conversations)} dated sessions, "
        f"{len(data.questions):,} questions ({', '.join(f'{counts[c]} {c}' for c in CATEGORIES)}). "
        f"Conversations 0 to {SPLIT - 1} are the tuning split; the table reports the other "
        f"{len(data.conversations) - SPLIT} ({', '.join(f'{held[c]} {c}' for c in SCORED)}; the "
        f"{held['no-answer']} no-answer questions have no evidence to find). Recall: the share of a "
        "question's evidence turns in the top k.\n\n" + "\n".join(lines)
    )
