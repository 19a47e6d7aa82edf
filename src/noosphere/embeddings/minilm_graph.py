"""The all-MiniLM-L6-v2 encoder as an ONNX graph, built from the safetensors weights.

onnxruntime runs the graph multi-threaded with fused kernels; building the graph ourselves means
no torch (an ONNX *export* would need it). The graph is the standard BERT encoder: embeddings +
LayerNorm, then six blocks of self-attention and a GELU feed-forward, each closed by a residual
LayerNorm. Pooling and normalisation stay in numpy (``minilm.py``), shared with the numpy runtime.

Inputs: ``input_ids`` (batch, seq) int64, ``position_ids`` (seq,) int64,
``mask_bias`` (batch, 1, 1, seq) float32 (0 for tokens, -1e9 for padding).
Output: ``hidden`` (batch, seq, 384) float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

HIDDEN = 384
HEADS = 12
LAYERS = 6
EPS = 1e-12
_OPSET = 17  # LayerNormalization needs 17


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: NDArray[np.generic]) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, weight: NDArray[np.float32], bias: NDArray[np.float32], name: str) -> str:
        w = self.const(name + ".w", weight.T.astype(np.float32))
        b = self.const(name + ".b", bias.astype(np.float32))
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def layer_norm(self, x: str, weight: NDArray[np.float32], bias: NDArray[np.float32], name: str) -> str:
        w = self.const(name + ".w", weight)
        b = self.const(name + ".b", bias)
        return self.op("LayerNormalization", [x, w, b], axis=-1, epsilon=EPS)


def build_encoder(weights: dict[str, NDArray[np.float32]]) -> bytes:
    """Serialise the encoder graph for ``weights`` (as loaded from ``model.safetensors``)."""
    g = _GraphBuilder()
    head_dim = HIDDEN // HEADS
    word = g.const("word", weights["embeddings.word_embeddings.weight"])
    pos = g.const("pos", weights["embeddings.position_embeddings.weight"])
    type0 = g.const("type0", weights["embeddings.token_type_embeddings.weight"][0])
    x = g.op("Add", [g.op("Gather", [word, "input_ids"]), g.op("Gather", [pos, "position_ids"])])
    x = g.op("Add", [x, type0])
    x = g.layer_norm(
        x, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], "emb_ln"
    )
    split_shape = g.const("split_shape", np.array([0, 0, HEADS, head_dim], dtype=np.int64))
    merge_shape = g.const("merge_shape", np.array([0, 0, HIDDEN], dtype=np.int64))
    scale = g.const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    inv_sqrt2 = g.const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))
    one = g.const("one", np.array(1.0, dtype=np.float32))
    half = g.const("half", np.array(0.5, dtype=np.float32))

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def heads(name: str, perm: list[int], i: int = i, p: str = p, x: str = x) -> str:
            proj = g.linear(
                x,
                weights[p + f"attention.self.{name}.weight"],
                weights[p + f"attention.self.{name}.bias"],
                f"l{i}.{name}",
            )
            return g.op("Transpose", [g.op("Reshape", [proj, split_shape])], perm=perm)

        q = heads("query", [0, 2, 1, 3])  # (b, h, n, d)
        k = heads("key", [0, 2, 3, 1])  # (b, h, d, n)
        v = heads("value", [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), "mask_bias"])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_shape])
        attn = g.linear(
            ctx,
            weights[p + "attention.output.dense.weight"],
            weights[p + "attention.output.dense.bias"],
            f"l{i}.attn_out",
        )
        x = g.layer_norm(
            g.op("Add", [x, attn]),
            weights[p + "attention.output.LayerNorm.weight"],
            weights[p + "attention.output.LayerNorm.bias"],
            f"l{i}.ln1",
        )
        up = g.linear(
            x,
            weights[p + "intermediate.dense.weight"],
            weights[p + "intermediate.dense.bias"],
            f"l{i}.up",
        )
        erf = g.op("Erf", [g.op("Mul", [up, inv_sqrt2])])
        gelu = g.op("Mul", [g.op("Mul", [up, half]), g.op("Add", [erf, one])])
        down = g.linear(
            gelu, weights[p + "output.dense.weight"], weights[p + "output.dense.bias"], f"l{i}.down"
        )
        x = g.layer_norm(
            g.op("Add", [x, down]),
            weights[p + "output.LayerNorm.weight"],
            weights[p + "output.LayerNorm.bias"],
            f"l{i}.ln2",
        )

    g.nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    graph = helper.make_graph(
        g.nodes,
        "minilm_encoder",
        inputs=[
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["seq"]),
            helper.make_tensor_value_info("mask_bias", TensorProto.FLOAT, ["batch", 1, 1, "seq"]),
        ],
        outputs=[helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = 8
    return model.SerializeToString()
