"""A reproducible conversational-memory dataset: chat sessions with planted facts, and questions
whose answers sit in known turns.

Three kinds of question, so that neither keywords nor meaning alone is enough:
- ``paraphrase``: the question shares almost no words with the answer turn;
- ``identifier``: many turns look alike and only a rare token (ticket id, host name) tells them apart;
- ``context``: the answer turn is a short reply ("Biscuit, after the cookies!") that only makes
  sense with the turn before it.
Everything else is filler small talk drawn from the same pools.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Turn:
    session: str
    role: str
    text: str
    key: str = ""  # set on turns that answer a question


@dataclass
class Question:
    text: str
    kind: str
    answer_key: str


@dataclass
class Dataset:
    sessions: list[list[Turn]] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


PARAPHRASE = [
    (
        "We finally adopted a grey kitten from the shelter and called her {name}.",
        "What name did we give the cat we got?",
    ),
    ("My flight to {city} leaves on Thursday at 7 in the morning.", "When am I travelling by plane?"),
    ("I can't eat peanuts, I'm seriously allergic to them.", "Is there any food I must avoid?"),
    ("My sister {name} is getting married in June in {city}.", "Which family wedding is coming up?"),
    (
        "I started learning the cello two months ago, practising every evening.",
        "What instrument am I studying?",
    ),
    ("Our rent goes up to 1450 a month starting next quarter.", "How much will the apartment cost us?"),
    ("I switched to decaf because coffee was wrecking my sleep.", "Why did I change what I drink?"),
    (
        "The doctor said my knee needs six weeks of physiotherapy.",
        "What treatment was recommended for my leg injury?",
    ),
    (
        "We're repainting the living room a dark olive green this weekend.",
        "What colour will the lounge walls be?",
    ),
    ("I'm training for the {city} half marathon in October.", "Which running race am I preparing for?"),
    ("My daughter {name} just lost her first baby tooth.", "What happened with my kid's teeth?"),
    (
        "I finished reading a novel about a lighthouse keeper on a remote island.",
        "What was the last book I read about?",
    ),
    ("The car failed its inspection because of worn brake pads.", "Why didn't my vehicle pass the check?"),
    ("I'm vegetarian since last spring, no meat or fish at all.", "What is my diet like?"),
    ("Our wifi password is taped under the router, it's {code}.", "How do I get on the home internet?"),
]
IDENTIFIER = [
    ("Ticket {code} about the checkout crash is assigned to {name}.", "Who is handling {code}?"),
    ("The nightly backup for host {host} now runs at 2am.", "When does {host} get backed up?"),
    ("Invoice {code} from the printing supplier is still unpaid.", "What is the status of invoice {code}?"),
    ("Build {code} broke because of a flaky integration test.", "Why did build {code} fail?"),
    ("Server {host} was moved to the {city} rack last week.", "Where is {host} now?"),
]
CONTEXT = [
    ("What did you end up naming the new puppy?", "{name}, after the cookies!", "What is my puppy called?"),
    (
        "So which city did you pick for the team offsite?",
        "{city}, mostly because of the trains.",
        "Where is the team offsite?",
    ),
    (
        "What's the door code for the new office?",
        "It's {code}, don't share it.",
        "What is the office door code?",
    ),
    ("Which dentist did you book in the end?", "Dr. {name}, the one near the park.", "Who is my dentist?"),
    (
        "What are you calling the side project?",
        "{name}. It's a tiny budgeting app.",
        "What is the name of my side project?",
    ),
    (
        "Where are you parking the camper van this winter?",
        "At my uncle's barn in {city}.",
        "Where is the camper van kept?",
    ),
]
FILLER = [
    "How was your weekend?",
    "Pretty relaxed, we mostly stayed in.",
    "Did you see the game last night?",
    "The weather has been strange lately.",
    "I need to clean the kitchen at some point.",
    "Work was busy again today.",
    "That sounds exhausting, take a break.",
    "I made pasta for dinner, nothing fancy.",
    "Any plans for the holidays?",
    "Not yet, maybe visit family.",
    "The new coffee place downtown is decent.",
    "I keep forgetting to water the plants.",
    "Traffic was terrible this morning.",
    "I watched a documentary about octopuses.",
    "We should catch up properly soon.",
    "My phone battery dies so fast now.",
    "The meeting ran over by half an hour.",
    "I'm thinking about getting a bike.",
    "Did you try the recipe I sent?",
    "Yes, it turned out great.",
    "I have a cold, staying in today.",
    "The train was delayed again.",
    "I'm reorganising my bookshelf.",
    "The kids have a school trip next week.",
    "I finally fixed the squeaky door.",
    "Our neighbour has a new dog.",
    "The ticket system was slow today.",
    "Someone left the office fridge open.",
    "I bought new running shoes.",
    "The backup drive is almost full.",
    "I might repaint the bedroom too.",
    "The invoice template needs updating.",
    "We had a power cut for an hour.",
    "My sister called about the holidays.",
    "I need a new winter coat.",
    "The build pipeline was flaky this week.",
    "I'm learning a bit of Spanish.",
    "What are you reading at the moment?",
    "Nothing much, just news.",
    "The server room is too warm.",
    "I tried a new route to work.",
    "The park was packed on Sunday.",
]
NAMES = [
    "Biscuit",
    "Marco",
    "Ines",
    "Tobias",
    "Priya",
    "Lena",
    "Oskar",
    "Yuki",
    "Amara",
    "Felix",
    "Noor",
    "Pixel",
]
CITIES = ["Lyon", "Porto", "Ghent", "Tartu", "Bergen", "Trieste", "Bilbao", "Lecce", "Graz", "Aarhus"]


def generate(sessions: int = 150, turns: int = 20, seed: int = 11) -> Dataset:
    rng = random.Random(seed)
    data = Dataset(sessions=[[] for _ in range(sessions)])

    def slots() -> dict[str, str]:
        return {
            "name": rng.choice(NAMES),
            "city": rng.choice(CITIES),
            "code": f"{rng.choice(['OPS', 'INV', 'B', 'TKT'])}-{rng.randint(1000, 9999)}",
            "host": f"{rng.choice(['db', 'web', 'cache', 'gpu'])}-{rng.randint(10, 99)}",
        }

    for s in range(sessions):
        sid = f"s{s:03d}"
        for t in range(turns):
            data.sessions[s].append(Turn(sid, "user" if t % 2 == 0 else "assistant", rng.choice(FILLER)))

    used: set[tuple[int, int]] = set()

    def place(texts: list[str], question: str, kind: str, answer_index: int) -> None:
        while True:  # a free stretch of turns, so no planted fact overwrites another
            s = rng.randrange(sessions)
            at = rng.randrange(1, turns - len(texts))
            span = {(s, at + i) for i in range(-1, len(texts) + 1)}
            if not span & used:
                used.update(span)
                break
        key = f"q{len(data.questions)}"
        for offset, text in enumerate(texts):
            turn = data.sessions[s][at + offset]
            turn.text = text
            turn.key = key if offset == answer_index else ""
        data.questions.append(Question(question, kind, key))

    for statement, question in PARAPHRASE:
        place([statement.format(**slots())], question.format(**slots()), "paraphrase", 0)
    for _ in range(10):  # each identifier template several times: look-alike turns
        for statement, question in IDENTIFIER:
            values = slots()
            place([statement.format(**values)], question.format(**values), "identifier", 0)
    for ask, reply, question in CONTEXT:
        place([ask, reply.format(**slots())], question, "context", 1)
    return data
