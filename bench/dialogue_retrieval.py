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
    HOP_WEIGHT,
    HYBRID_K,
    RARE_TEXT_WEIGHT,
    TEXT_WEIGHT,
    hop_list,
    hop_pool,
    text_weight,
    weighted_rrf,
)
from noosphere.memory.service import MemoryService
from noosphere.store.contract import Viewer
from noosphere.store.sqlite import SQLiteStore
from noosphere.store.vector_centre import CENTRE_PRIOR, RESCORE_DEPTH, centred_cosines

KS = (5, 10)
DEPTH = 50  # candidates per list, as the search takes them
SPLIT = 4  # conversations 0..3 tune, the rest are reported
DEPTHS = (1, 2, 4)  # plain-cosine neighbours re-ranked from the centre, per candidate taken
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

    vector: list[str]  # centred, as the search takes it
    plain: list[str]  # plain cosine (before centring)
    text: list[str]
    day: list[str]
    hop: list[str]  # candidates by likeness to the first fusion's best match
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
    by_vector = await service.store.vector_candidates(vector, viewer, filters, now, DEPTH, centred=True)
    by_plain = await service.store.vector_candidates(vector, viewer, filters, now, DEPTH)
    by_day = await service.said_on_named_days(query, vector, viewer, now, DEPTH)
    shipped = await service.search_with_vector(owner, query, vector)
    lists = Lists(
        [c.id for c in by_vector],
        [c.id for c in by_plain],
        [c.id for c in by_text],
        [c.id for c in by_day],
        [],
        [h.memory.id for h in shipped],
        await service.store.rarest_term_count(service.analyzer.terms(question.text)),
    )
    first = _fused(lists, HYBRID_K, TEXT_WEIGHT, DAY_WEIGHT)
    if first:
        pool = hop_pool(first[0], lists.vector, lists.text, lists.day)
        hop = await service.store.similar_candidates(first[0], pool, viewer, filters, now, centred=True)
        lists.hop = hop_list(first[0], [c.id for c in hop], DEPTH)
    return lists


def _fused(
    lists: Lists,
    k: int,
    text: float,
    day: float,
    vector: Sequence[str] | None = None,
    hop: float = 0.0,
) -> list[str]:
    """Weighted RRF; the BM25 list counts fully when the query has a rare word, as shipped."""
    if text_weight(lists.rarest) == RARE_TEXT_WEIGHT:
        text = RARE_TEXT_WEIGHT
    by_vector = lists.vector if vector is None else vector
    scores = weighted_rrf([(by_vector, 1.0), (lists.text, text), (lists.day, day), (lists.hop, hop)], k)
    return sorted(scores, key=lambda i: scores[i], reverse=True)


def _methods(lists: Lists) -> dict[str, list[str]]:
    return {
        "full text": lists.text,
        "vector, plain cosine": lists.plain,
        "vector, centred": lists.vector,
        "RRF k=60, two lists, plain (before)": _fused(lists, 60, 1.0, 0.0, lists.plain),
        "weighted RRF, plain vectors, no second hop": _fused(
            lists, HYBRID_K, TEXT_WEIGHT, DAY_WEIGHT, lists.plain
        ),
        "weighted RRF, no day list": _fused(lists, HYBRID_K, TEXT_WEIGHT, 0.0, hop=HOP_WEIGHT),
        "weighted RRF, no second hop": _fused(lists, HYBRID_K, TEXT_WEIGHT, DAY_WEIGHT),
        "hybrid (as shipped)": lists.shipped,
    }


def _recall(ranked: list[str], evidence: list[str], k: int) -> float:
    return len(set(ranked[:k]) & set(evidence)) / len(evidence)


async def run() -> None:
    data = generate()
    embedder = MemoEmbedder(MiniLMEmbedder())
    scores: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    tuning = centring = ""
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
                    scores[(variant.name, "vector, centred")]["tuning@10"].append(value)
                    continue
                for method, ids in _methods(lists).items():
                    ranked = [turn_of[i] for i in ids]
                    for k in KS:
                        value = _recall(ranked, question.evidence, k)
                        scores[(variant.name, method)][f"all@{k}"].append(value)
                        scores[(variant.name, method)][f"{question.category}@{k}"].append(value)
            if not variant.settings:
                tuning = _tune(found, turn_of)
                centring = await _centring(service, found, turn_of)
            await store.close()
    body = "\n\n".join([_report(data, scores), _short_turns(scores), centring, tuning])
    write_section("dialogue_retrieval", "Memory search over long conversations", body)


def _short_turns(scores: dict[tuple[str, str], dict[str, list[float]]]) -> str:
    """How short a turn must be to be embedded with the one before it, chosen on the tuning split."""
    rows = [
        "| embedded with the turn before | tuning split vector recall@10 | reported split |",
        "|---|---|---|",
    ]
    for variant in SHORT_TURNS:
        values = scores[(variant.name, "vector, centred")]
        limit = variant.settings.get("embed_context_words", MemorySettings().embed_context_words)
        label = "never" if limit == 0 else f"turns below {limit} words"
        tuning, reported = (sum(v) / len(v) for v in (values["tuning@10"], values["all@10"]))
        rows.append(f"| {label} | {tuning:.3f} | {reported:.3f} |")
    return "Short turns (vector search alone):\n\n" + "\n".join(rows)


async def _centring(
    service: MemoryService, found: list[tuple[Question, Lists]], turn_of: dict[str, str]
) -> str:
    """Where to measure cosine from, and how many plain-cosine neighbours to re-rank: computed
    exactly here with numpy over each conversation's vectors, next to what the store returns."""
    vectors: dict[str, list[tuple[str, NDArray[np.float32]]]] = defaultdict(list)
    async for batch in service.store.scan(1000):
        for memory, vector in batch:
            if vector is not None:
                vectors[memory.owner].append((memory.id, vector))
    everything = np.stack([v for rows in vectors.values() for _, v in rows])
    store_mean = everything.mean(axis=0)
    variants = [
        "plain cosine (before)",
        "centred on the whole store's mean",
        "centred on the conversation's mean, every memory",
        *(
            f"centred (with prior {CENTRE_PRIOR}), re-ranking the {d * DEPTH} nearest"
            + (" (as shipped)" if d == RESCORE_DEPTH else "")
            for d in DEPTHS
        ),
    ]
    results: dict[tuple[str, bool, str], list[float]] = defaultdict(list)
    for question, lists in found:
        ids = [i for i, _ in vectors[_owner(question.conversation).id]]
        matrix = np.stack([v for _, v in vectors[_owner(question.conversation).id]])
        (query,) = await service.embed([question.text])
        plain = matrix @ query
        centre = matrix.sum(axis=0) / (len(ids) + CENTRE_PRIOR)
        nearest = np.argsort(-plain)

        orders = [
            nearest,
            np.argsort(-centred_cosines(matrix, query, store_mean.astype(np.float32))),
            np.argsort(-centred_cosines(matrix, query, matrix.mean(axis=0))),
            *(_rescored(matrix, query, centre, nearest[:d]) for d in (d * DEPTH for d in DEPTHS)),
        ]
        tuning = question.conversation < SPLIT
        for name, order in zip(variants, orders, strict=True):
            ranked = [ids[j] for j in order[:DEPTH]]
            results[(name, tuning, "vector")].append(
                _recall([turn_of[i] for i in ranked], question.evidence, 10)
            )
            hybrid = _fused(lists, HYBRID_K, TEXT_WEIGHT, DAY_WEIGHT, ranked)
            results[(name, tuning, "hybrid")].append(
                _recall([turn_of[i] for i in hybrid], question.evidence, 10)
            )
    rows = [
        "| vector scores | tuning: vector @10 | tuning: hybrid @10 "
        "| reported: vector @10 | reported: hybrid @10 |",
        "|---|---|---|---|---|",
    ]
    for name in variants:
        cells = [
            sum(values) / len(values)
            for split in (True, False)
            for values in (results[(name, split, "vector")], results[(name, split, "hybrid")])
        ]
        rows.append(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return (
        "Centring (`store/vector_centre.py`), computed exactly with numpy over each conversation's "
        "vectors; hybrid fuses each with the shipped BM25 and named-day lists (no second hop):\n\n"
        + "\n".join(rows)
    )


def _rescored(
    matrix: NDArray[np.float32],
    query: NDArray[np.float32],
    centre: NDArray[np.float32],
    top: NDArray[np.intp],
) -> NDArray[np.intp]:
    """``top`` (the plain-cosine nearest) re-ranked by centred cosine."""
    order: NDArray[np.intp] = top[np.argsort(-centred_cosines(matrix[top], query, centre))]
    return order


def _tune(found: list[tuple[Question, Lists]], turn_of: dict[str, str]) -> str:
    """Fusion parameters chosen on the tuning split, then checked on the others."""

    def mean(split: bool, k: int, text: float, day: float, hop: float) -> float:
        values = [
            _recall([turn_of[i] for i in _fused(lists, k, text, day, hop=hop)], q.evidence, 10)
            for q, lists in found
            if (q.conversation < SPLIT) == split
        ]
        return sum(values) / len(values)

    grid = [
        (k, t, d, h)
        for k in (5, 10, 20, 60)
        for t in (0.1, 0.2, 0.35, 0.5, 1.0)
        for d in (0.0, 1.0, 2.0)
        for h in (0.0, 0.2, 0.3, 0.5)
    ]
    tuned = {params: mean(True, *params) for params in grid}
    best = max(grid, key=lambda params: tuned[params])
    rows = [
        "| k | text weight | day weight | second hop weight | tuning split recall@10 "
        "| reported split recall@10 |",
        "|---|---|---|---|---|---|",
    ]
    shipped = (HYBRID_K, TEXT_WEIGHT, DAY_WEIGHT, HOP_WEIGHT)
    for params in dict.fromkeys(
        [
            *sorted(grid, key=lambda p: tuned[p], reverse=True)[:5],
            shipped,
            (HYBRID_K, TEXT_WEIGHT, DAY_WEIGHT, 0.0),
        ]
    ):
        rows.append(
            f"| {' | '.join(str(p) for p in params)} | {tuned[params]:.3f} | {mean(False, *params):.3f} |"
        )
    hops = ", ".join(
        f"{h}: {tuned[(HYBRID_K, TEXT_WEIGHT, DAY_WEIGHT, h)]:.3f}" for h in (0.0, 0.2, 0.3, 0.5)
    )
    plain = (60, 1.0, 0.0, 0.0)
    rows.append(f"| 60 | 1.0 | 0.0 | 0.0 | {mean(True, *plain):.3f} | {mean(False, *plain):.3f} |")
    return (
        f"Fusion tuned on conversations 0 to {SPLIT - 1} (weighted RRF over the vector, BM25, "
        f"named-day and second-hop lists; {len(grid)} settings): best k={best[0]}, text weight "
        f"{best[1]}, day weight {best[2]}, second hop {best[3]}; shipped: k={HYBRID_K}, text weight "
        f"{TEXT_WEIGHT}, day weight {DAY_WEIGHT}, second hop {HOP_WEIGHT}. The five best on the "
        "tuning split, the shipped weights with and without the second hop, and plain RRF (k=60, "
        "equal weights, two lists) for comparison:\n\n" + "\n".join(rows) + "\n\n"
        f"Second hop weight at the shipped k, text and day weights, tuning split recall@10: {hops}."
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
