"""A reproducible synthetic memory corpus of any size, with realistic text and vectors.

Texts are built from templates and a vocabulary (so full-text statistics look like real notes);
vectors are real all-MiniLM-L6-v2 embeddings of a few thousand distinct texts, each reused with
small Gaussian noise for the variants (so the vector space is clustered like real data, and a
100k corpus does not need 100k model calls).
"""

from __future__ import annotations

import random

import numpy as np
from numpy.typing import NDArray

from noosphere.embeddings.minilm import MiniLMEmbedder

SUBJECTS = [
    "the build server",
    "Alice",
    "the staging cluster",
    "our Lyon peer",
    "the invoice system",
    "Bob",
    "the garage GPU",
    "the mobile app",
    "the billing job",
    "the VPN gateway",
    "Carol",
    "the search index",
    "the backup disk",
    "the release train",
    "Dana",
    "the CI runner",
]
VERBS = [
    "needs",
    "prefers",
    "failed with",
    "was moved to",
    "depends on",
    "reported",
    "switched to",
    "is blocked by",
    "recovered from",
    "was upgraded to",
    "ran out of",
    "started using",
]
OBJECTS = [
    "more memory",
    "green tea",
    "error E{n}",
    "floor {n}",
    "PostgreSQL 18",
    "a new API key",
    "port {n}",
    "the Friday freeze",
    "version 2.{n}",
    "disk space",
    "the nightly backup",
    "a retry policy",
    "two extra cores",
    "a rate limit of {n} rpm",
    "the blue theme",
]
TAILS = [
    "last week",
    "after the outage",
    "according to the runbook",
    "since Tuesday",
    "for now",
    "until the audit",
    "as decided in the review",
    "",
    "",
    "",
]


def texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        obj = rng.choice(OBJECTS).format(n=rng.randint(1, 9999))
        out.append(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {obj} {rng.choice(TAILS)} (note {i})".replace(
                "  ", " "
            )
        )
    return out


def vectors(
    corpus: list[str], embedder: MiniLMEmbedder, distinct: int = 3000, seed: int = 7
) -> NDArray[np.float32]:
    base = embedder.embed(corpus[:distinct])
    rng = np.random.default_rng(seed)
    picks = np.arange(len(corpus)) % len(base)
    noisy = base[picks] + rng.normal(0, 0.03, size=(len(corpus), base.shape[1])).astype(np.float32)
    noisy[: len(base)] = base
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
