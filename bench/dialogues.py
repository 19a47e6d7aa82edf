"""A reproducible evaluation of memory search over long conversations, generated from a seed.

Modelled on how agents use memory: two people chat over many dated sessions; weeks later someone
asks about what was said. Each conversation has two speakers with their own lives (facts drawn
per speaker from ``bench/dialogue_facts.py``), ``SESSIONS`` dated sessions a few days to two
weeks apart, and hundreds of turns: greetings, small talk that reuses the same words (dogs,
trips, work), facts with the other speaker's reaction, facts that change (a plan, then its
cancellation), and events on given days.

Questions come in five categories, each with the ids of the turns that answer it (its evidence):

- ``single-hop``: one turn answers it, and the question avoids that turn's words;
- ``multi-hop``: two turns from different sessions answer it only together;
- ``temporal``: when something happened (the answer is the session's date), what someone did on a
  given date, or in the week after something else;
- ``update``: the fact changed; only the latest turn about it is the evidence;
- ``no-answer``: nothing in the conversation answers it (asked of the speaker who never said it).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.dialogue_facts import (
    EVENTS,
    GOODBYE_REPLIES,
    GOODBYES,
    GREETING_REPLIES,
    GREETINGS,
    MULTI_HOP,
    NEVER_SAID,
    POOLS,
    REACTIONS,
    SINGLE_HOP,
    SMALL_TALK,
    UPDATES,
)

SPEAKERS = [
    "Mia", "Omar", "Lena", "Jonas", "Priya", "Tomas", "Aiko", "Ruth", "Kwame", "Sofia", "Dmitri",
    "Hannah", "Yusuf", "Elena", "Marcus", "Ines", "Felix", "Nadia", "Rafael", "Greta", "Amara",
    "Pieter", "Saoirse", "Hugo",
]  # fmt: skip
CONVERSATIONS = 12
SESSIONS = 20
SMALL_TALK_PER_SESSION = (3, 5)
PER_SPEAKER = {"single-hop": 15, "update": 7, "multi-hop": 7, "when": 4, "on-date": 3, "week-after": 3}
NO_ANSWER = {"other speaker": 4, "never said": 4}
CATEGORIES = ["single-hop", "multi-hop", "temporal", "update", "no-answer"]
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass
class Turn:
    id: str
    session: str  # the conversation's session: a thread
    speaker: str
    text: str
    at: datetime

    @property
    def content(self) -> str:
        return f"{self.speaker}: {self.text}"


@dataclass
class Question:
    conversation: int
    category: str
    text: str
    evidence: list[str]  # turn ids; empty for no-answer


@dataclass
class Conversation:
    index: int
    speakers: tuple[str, str]
    sessions: list[list[Turn]] = field(default_factory=list)

    @property
    def turns(self) -> list[Turn]:
        return [turn for session in self.sessions for turn in session]


@dataclass
class Dialogues:
    conversations: list[Conversation]
    questions: list[Question]


@dataclass
class _Said:
    """A fact's turn to be placed: who says it, what, in which session, and the questions that
    will point at the turn once it has an id."""

    speaker: str
    text: str
    session: int
    handles: list[tuple[Question, int]] = field(default_factory=list)  # (question, evidence slot)


class _Filler:
    """Fills a template's slots for one speaker: the same slot name gives the same value within
    one fact; ``name2`` is a different value from ``name``'s pool."""

    def __init__(self, rng: random.Random, speaker: str, other: str) -> None:
        self.rng, self.speaker, self.other = rng, speaker, other

    def values(self, *templates: str) -> dict[str, str]:
        chosen: dict[str, str] = {"X": self.speaker, "A": self.speaker, "B": self.other}
        for name in sorted({m for t in templates for m in _SLOT.findall(t)} - set(chosen)):
            pool = POOLS[name.rstrip("2")]
            taken = chosen.get(name.rstrip("2"))
            chosen[name] = self.rng.choice([v for v in pool if v != taken])
        return chosen


def _date(at: datetime) -> str:
    return f"{at.day} {at:%B %Y}"


def _conversation(rng: random.Random, index: int) -> tuple[Conversation, list[Question]]:
    a, b = rng.sample(SPEAKERS, 2)
    start = datetime(2023, 1, 2, 18, tzinfo=UTC) + timedelta(days=rng.randrange(0, 150))
    dates, day = [], start
    for _ in range(SESSIONS):
        dates.append(day + timedelta(minutes=rng.randrange(0, 180)))
        day += timedelta(days=rng.randrange(3, 15))
    said: list[_Said] = []
    questions: list[Question] = []
    used_single: dict[str, set[int]] = {}
    for speaker, other in ((a, b), (b, a)):
        fill = _Filler(rng, speaker, other)

        def ask(category: str, text: str, evidence: int, *placed: _Said) -> None:
            question = Question(index, category, text, [""] * evidence)
            questions.append(question)
            for slot, fact in enumerate(placed):
                fact.handles.append((question, slot))

        singles = rng.sample(range(len(SINGLE_HOP)), PER_SPEAKER["single-hop"])
        used_single[speaker] = set(singles)
        for i in singles:
            statement, question = SINGLE_HOP[i]
            v = fill.values(statement, question)
            fact = _Said(speaker, statement.format(**v), rng.randrange(SESSIONS))
            said.append(fact)
            ask("single-hop", question.format(**v), 1, fact)
        for first, later, question in rng.sample(UPDATES, PER_SPEAKER["update"]):
            v = fill.values(first, later, question)
            s1 = rng.randrange(0, SESSIONS // 2)
            old = _Said(speaker, first.format(**v), s1)
            new = _Said(speaker, later.format(**v), rng.randrange(s1 + 3, SESSIONS))
            said += [old, new]
            ask("update", question.format(**v), 1, new)
        for first, later, question in rng.sample(MULTI_HOP, PER_SPEAKER["multi-hop"]):
            v = fill.values(first, later, question)
            s1 = rng.randrange(0, SESSIONS - 4)
            one = _Said(speaker, first.format(**v), s1)
            two = _Said(speaker, later.format(**v), rng.randrange(s1 + 2, SESSIONS))
            said += [one, two]
            ask("multi-hop", question.format(**v), 2, one, two)
        events = rng.sample(
            EVENTS, sum(PER_SPEAKER[k] for k in ("when", "on-date")) + 2 * PER_SPEAKER["week-after"]
        )
        sessions = rng.sample(range(SESSIONS - 1), len(events))
        for (event, wording), session in zip(events[: PER_SPEAKER["when"]], sessions, strict=False):
            v = fill.values(event, wording)
            fact = _Said(speaker, _sentence(event.format(**v)), session)
            said.append(fact)
            ask("temporal", f"When did {speaker} {wording.format(**v)}?", 1, fact)
        rest = list(zip(events[PER_SPEAKER["when"] :], sessions[PER_SPEAKER["when"] :], strict=True))
        for (event, wording), session in rest[: PER_SPEAKER["on-date"]]:
            v = fill.values(event, wording)
            fact = _Said(speaker, _sentence(event.format(**v).replace("yesterday", "this morning")), session)
            said.append(fact)
            ask("temporal", f"What did {speaker} do on the morning of {_date(dates[session])}?", 1, fact)
        pairs = rest[PER_SPEAKER["on-date"] :]
        for k in range(PER_SPEAKER["week-after"]):
            ((first, first_words), session), ((second, _), _) = pairs[2 * k], pairs[2 * k + 1]
            v = fill.values(first, first_words, second)
            one = _Said(speaker, _sentence(first.format(**v)), session)
            two = _Said(speaker, _sentence(second.format(**v)), session + 1)
            said += [one, two]
            ask(
                "temporal",
                f"What did {speaker} do in the week after they {first_words.format(**v)}?",
                2,
                one,
                two,
            )
    for speaker, other in ((a, b), (b, a)):
        fill = _Filler(rng, speaker, other)
        theirs_only = sorted(used_single[other] - used_single[speaker])
        for i in rng.sample(theirs_only, NO_ANSWER["other speaker"]):
            questions.append(
                Question(index, "no-answer", SINGLE_HOP[i][1].format(**fill.values(SINGLE_HOP[i][1])), [])
            )
        for text in rng.sample(NEVER_SAID, NO_ANSWER["never said"]):
            questions.append(Question(index, "no-answer", text.format(X=speaker), []))
    conversation = Conversation(index, (a, b))
    for session in range(SESSIONS):
        facts = [f for f in said if f.session == session]
        rng.shuffle(facts)
        conversation.sessions.append(_session(rng, index, session, dates[session], (a, b), facts))
    return conversation, questions


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _session(
    rng: random.Random,
    conversation: int,
    index: int,
    start: datetime,
    speakers: tuple[str, str],
    facts: list[_Said],
) -> list[Turn]:
    """One session: a greeting, the facts (each answered by the other speaker) between bits of
    small talk, a goodbye. Turns are a minute apart from the session's start."""
    a, b = speakers if index % 2 == 0 else speakers[::-1]
    lines: list[tuple[str, str, _Said | None]] = [
        (a, rng.choice(GREETINGS).format(B=b), None),
        (b, rng.choice(GREETING_REPLIES).format(A=a), None),
    ]
    talks = rng.sample(SMALL_TALK, rng.randint(*SMALL_TALK_PER_SESSION))
    blocks: list[list[tuple[str, str, _Said | None]]] = []
    for fact in facts:
        other = b if fact.speaker == a else a
        blocks.append([(fact.speaker, fact.text, fact), (other, rng.choice(REACTIONS), None)])
    for talk in talks:
        opener = rng.choice(speakers)
        other = speakers[1] if opener == speakers[0] else speakers[0]
        v = _Filler(rng, opener, other).values(*talk)
        blocks.append(
            [
                (other, line[2:].format(**v), None)
                if line.startswith("B:")
                else (opener, line.format(**v), None)
                for line in talk
            ]
        )
    rng.shuffle(blocks)
    for block in blocks:
        lines += block
    lines += [(a, rng.choice(GOODBYES), None), (b, rng.choice(GOODBYE_REPLIES), None)]
    turns = []
    for n, (speaker, text, fact) in enumerate(lines):
        turn = Turn(
            f"c{conversation}-s{index}-t{n}",
            f"c{conversation}-s{index}",
            speaker,
            text,
            start + timedelta(minutes=n),
        )
        turns.append(turn)
        if fact is not None:
            for question, slot in fact.handles:
                question.evidence[slot] = turn.id
    return turns


def generate(seed: int = 13, conversations: int = CONVERSATIONS) -> Dialogues:
    rng = random.Random(seed)
    made = [_conversation(rng, i) for i in range(conversations)]
    return Dialogues([c for c, _ in made], [q for _, qs in made for q in qs])


__all__ = ["CATEGORIES", "Conversation", "Dialogues", "Question", "Turn", "generate"]
