"""The torch-free embedder reproduces sentence-transformers' all-MiniLM-L6-v2 vectors."""

from __future__ import annotations

import numpy as np
import pytest

from noosphere.embeddings.minilm import MiniLMEmbedder


@pytest.fixture(scope="module")
def numpy_runtime() -> MiniLMEmbedder:
    return MiniLMEmbedder(runtime="numpy")


def _check(embedder: MiniLMEmbedder, items: list[dict[str, object]]) -> None:
    texts = [str(item["text"]) for item in items]
    reference = np.asarray([item["embedding"] for item in items], dtype=np.float32)
    vectors = embedder.embed(texts)
    assert vectors.shape == (len(texts), 384)
    cosines = (vectors * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.999, f"item {worst} ({texts[worst][:40]!r}) has cosine {cosines[worst]}"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_runtime_matches_the_reference_vectors(
    minilm: MiniLMEmbedder, reference_items: list[dict[str, object]]
) -> None:
    _check(minilm, reference_items)


def test_numpy_runtime_matches_the_reference_vectors(
    numpy_runtime: MiniLMEmbedder, reference_items: list[dict[str, object]]
) -> None:
    _check(numpy_runtime, reference_items)


def test_batch_order_and_padding_do_not_change_a_vector(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence with many more tokens in it than the first", ""]
    together = minilm.embed(texts)
    alone = np.stack([minilm.embed([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(minilm: MiniLMEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="runtime"):
        MiniLMEmbedder(runtime="torch")
