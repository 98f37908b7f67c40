"""The SigLIP2-NaFlex vision tower + LFM2-VL projector of a checkpoint as one ONNX graph (numpy + onnx, no torch).

One graph serves every crop shape: the patch count N and the patch grid (h, w) are dynamic. Its inputs are those of
Liquid AI's ONNX export of LFM2.5-VL ("tiled" vision graph: `pixel_values` float32 [1, N, 3*p*p] pre-patchified as
transformers' processor emits them, `spatial_shapes` int64 [1, 2] = (h, w)) for one unpadded crop, so it needs no
`pixel_attention_mask`; output `image_features` float32 [(h/2)*(w/2), n_embd].

The math is transformers 5.23's (models/siglip2/modeling_siglip2.py, models/lfm2_vl/modeling_lfm2_vl.py):
* the 16x16 learned position grid is resized to (h, w) as `F.interpolate(mode="bilinear", align_corners=False,
  antialias=True)` does it: two matrix products with torch's antialias weights, computed in the graph from (h, w).
  (ONNX Resize with antialias=1 differs from torch when shrinking: up to 0.1 in the features of a 32x2048 crop.)
* the attention scale head_dim**-0.5 is folded into q_proj (a power of two for every SigLIP2 head size: exact);
* pixel unshuffle is transformers' two reshape/permute steps written as one [h/2, 2, w/2, 2, C] transpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from convert.architecture import PROJECTOR, VISION
from convert.checkpoint import Checkpoint
from convert.safetensors_io import load_float32

OPSET = 20  # Gelu (20), LayerNormalization (17)
INPUT_PIXELS = "pixel_values"
INPUT_SHAPES = "spatial_shapes"
OUTPUT = "image_features"


@dataclass
class GraphBuilder:
    """Accumulates nodes and initializers; every helper returns the name of the value it produces."""

    load: Callable[[str], np.ndarray]  # official tensor name -> float32 values
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _count: int = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, name: str, values: np.ndarray | np.generic) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(values)), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, prefix: str, scale: float = 1.0) -> str:
        """x @ W.T + b for the checkpoint's Linear `prefix` (W stored transposed, as MatMul's constant B)."""
        weight = self.load(f"{prefix}.weight").T * np.float32(scale)
        bias = self.load(f"{prefix}.bias") * np.float32(scale)
        product = self.op("MatMul", [x, self.const(f"{prefix}.weight_t", weight)], f"{prefix}.matmul")
        return self.op("Add", [product, self.const(f"{prefix}.bias", bias)], f"{prefix}.out")

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        scale = self.const(f"{prefix}.weight", self.load(f"{prefix}.weight"))
        bias = self.const(f"{prefix}.bias", self.load(f"{prefix}.bias"))
        return self.op("LayerNormalization", [x, scale, bias], prefix, axis=-1, epsilon=eps)

    def int64(self, name: str, values: list[int]) -> str:
        return self.const(name, np.array(values, dtype=np.int64))


@dataclass(frozen=True)
class VisionShape:
    hidden: int
    heads: int
    layers: int
    grid: int  # side of the learned position grid (16)
    eps: float
    projector_layernorm: bool
    downsample: int


def vision_shape(checkpoint: Checkpoint) -> VisionShape:
    vision, dims = checkpoint.config["vision_config"], checkpoint.dims
    grid = round(dims.vision_positions**0.5)
    return VisionShape(
        hidden=dims.vision_hidden,
        heads=int(vision["num_attention_heads"]),
        layers=dims.vision_layers,
        grid=grid,
        eps=float(vision.get("layer_norm_eps", 1e-6)),
        projector_layernorm=dims.projector_layernorm,
        downsample=dims.downsample,
    )


def _resize_weights(b: GraphBuilder, size: str, grid: int, axis: str) -> str:
    """[size, grid] weights of torch's antialiased bilinear resize along one axis (aten UpSample.h
    _compute_weights_aa): triangle taps widened by the scale when shrinking, each row normalised to sum 1."""
    count = b.op("Squeeze", [b.op("Cast", [size], f"{axis}_size_f", to=TensorProto.FLOAT)], f"{axis}_n")  # scalar
    scale = b.op("Div", [b.const(f"{axis}_grid_f", np.float32(grid)), count], f"{axis}_scale")
    zero, step = b.const(f"{axis}_zero", np.float32(0)), b.const(f"{axis}_step", np.float32(1))
    index = b.op("Range", [zero, count, step], f"{axis}_index")
    half = b.const(f"{axis}_half", np.float32(0.5))
    center = b.op("Mul", [b.op("Add", [index, half], f"{axis}_mid"), scale], f"{axis}_center")  # [size]
    taps = b.const(f"{axis}_taps", (np.arange(grid, dtype=np.float32) + np.float32(0.5))[np.newaxis])  # [1, grid]
    offset = b.op("Sub", [taps, b.op("Unsqueeze", [center, b.int64(f"{axis}_axis1", [1])])], f"{axis}_offset")
    stretch = b.op("Max", [scale, b.const(f"{axis}_one", np.float32(1))], f"{axis}_support")
    distance = b.op("Abs", [b.op("Div", [offset, stretch], f"{axis}_arg")], f"{axis}_distance")
    weights = b.op("Relu", [b.op("Sub", [f"{axis}_one", distance])], f"{axis}_tri")
    total = b.op("ReduceSum", [weights, b.int64(f"{axis}_axes", [1])], f"{axis}_total", keepdims=1)
    return b.op("Div", [weights, total], f"{axis}_weights")


def _embeddings(b: GraphBuilder, shape: VisionShape) -> str:
    patches = b.linear(INPUT_PIXELS, f"{VISION}embeddings.patch_embedding")  # [1, N, D]
    table = b.load(f"{VISION}embeddings.position_embedding.weight").reshape(shape.grid, shape.grid, shape.hidden)
    grid = b.const("position_grid", np.ascontiguousarray(table.transpose(2, 0, 1)))  # [D, 16 rows, 16 cols]
    height = b.op("Slice", [INPUT_SHAPES, b.int64("h_start", [0]), b.int64("h_stop", [1]),
                            b.int64("last_axis", [1])], "grid_h")  # fmt: skip
    width = b.op("Slice", [INPUT_SHAPES, b.int64("w_start", [1]), b.int64("w_stop", [2]), "last_axis"], "grid_w")
    rows = _resize_weights(b, height, shape.grid, "rows")  # [h, 16]
    cols = _resize_weights(b, width, shape.grid, "cols")  # [w, 16]
    along_w = b.op("MatMul", [grid, b.op("Transpose", [cols], "cols_t", perm=[1, 0])], "position_w")  # [D, 16, w]
    resized = b.op("MatMul", [rows, along_w], "position_resized")  # [D, h, w]
    flat = b.op("Reshape", [resized, b.int64("shape_d_minus1", [shape.hidden, -1])], "position_flat")
    positions = b.op("Transpose", [flat], "positions", perm=[1, 0])  # [h*w, D], broadcast over the batch of 1
    return b.op("Add", [patches, positions], "embeddings")


def _attention(b: GraphBuilder, x: str, prefix: str, shape: VisionShape) -> str:
    head_dim = shape.hidden // shape.heads
    split = b.int64(f"{prefix}.split_shape", [1, -1, shape.heads, head_dim])
    merge = b.int64(f"{prefix}.merge_shape", [1, -1, shape.hidden])
    q = b.op("Reshape", [b.linear(x, f"{prefix}.q_proj", head_dim**-0.5), split], f"{prefix}.q")
    k = b.op("Reshape", [b.linear(x, f"{prefix}.k_proj"), split], f"{prefix}.k")
    v = b.op("Reshape", [b.linear(x, f"{prefix}.v_proj"), split], f"{prefix}.v")
    q = b.op("Transpose", [q], f"{prefix}.q_heads", perm=[0, 2, 1, 3])  # [1, H, N, hd]
    k = b.op("Transpose", [k], f"{prefix}.k_heads_t", perm=[0, 2, 3, 1])  # [1, H, hd, N]
    v = b.op("Transpose", [v], f"{prefix}.v_heads", perm=[0, 2, 1, 3])
    scores = b.op("MatMul", [q, k], f"{prefix}.scores")
    probs = b.op("Softmax", [scores], f"{prefix}.probs", axis=-1)
    context = b.op("Transpose", [b.op("MatMul", [probs, v], f"{prefix}.context")], f"{prefix}.ctx_t", perm=[0, 2, 1, 3])
    return b.linear(b.op("Reshape", [context, merge], f"{prefix}.merged"), f"{prefix}.out_proj")


def _encoder_layer(b: GraphBuilder, x: str, index: int, shape: VisionShape) -> str:
    prefix = f"{VISION}encoder.layers.{index}"
    attended = _attention(b, b.layer_norm(x, f"{prefix}.layer_norm1", shape.eps), f"{prefix}.self_attn", shape)
    x = b.op("Add", [x, attended], f"{prefix}.residual1")
    hidden = b.linear(b.layer_norm(x, f"{prefix}.layer_norm2", shape.eps), f"{prefix}.mlp.fc1")
    hidden = b.op("Gelu", [hidden], f"{prefix}.mlp.act", approximate="tanh")  # gelu_pytorch_tanh
    return b.op("Add", [x, b.linear(hidden, f"{prefix}.mlp.fc2")], f"{prefix}.residual2")


def _pixel_unshuffle(b: GraphBuilder, x: str, shape: VisionShape) -> str:
    """[1, h*w, C] -> [(h/f)*(w/f), f*f*C], row-major over (h/f, w/f), channels ordered (dy, dx, C)."""
    f = shape.downsample
    hw = b.op("Squeeze", [INPUT_SHAPES, b.int64("axis0_again", [0])], "unshuffle_hw")
    reduced = b.op("Div", [hw, b.int64("factor_pair", [f, f])], "grid_reduced")
    h_red = b.op("Slice", [reduced, b.int64("start0", [0]), b.int64("stop1", [1])], "h_reduced")
    w_red = b.op("Slice", [reduced, b.int64("start1", [1]), b.int64("stop2", [2])], "w_reduced")
    factor, width = b.int64("factor", [f]), b.int64("channels", [shape.hidden])
    target = b.op("Concat", [h_red, factor, w_red, factor, width], "unshuffle_shape", axis=0)
    grid = b.op("Reshape", [x, target], "unshuffle_grid")
    moved = b.op("Transpose", [grid], "unshuffle_moved", perm=[0, 2, 1, 3, 4])
    return b.op("Reshape", [moved, b.int64("tokens_shape", [-1, f * f * shape.hidden])], "unshuffled")


def _projector(b: GraphBuilder, x: str, shape: VisionShape) -> str:
    if shape.projector_layernorm:
        x = b.layer_norm(x, f"{PROJECTOR}layer_norm", 1e-5)  # nn.LayerNorm's default eps
    hidden = b.op("Gelu", [b.linear(x, f"{PROJECTOR}linear_1")], "projector_act")  # exact erf GELU
    out = b.linear(hidden, f"{PROJECTOR}linear_2")
    b.nodes.append(helper.make_node("Identity", [out], [OUTPUT], name=OUTPUT))
    return OUTPUT


def build_vision_model(checkpoint: Checkpoint) -> onnx.ModelProto:
    """The fp32 graph of `checkpoint`'s vision tower and projector (weights widened exactly from bf16/f16)."""
    shape = vision_shape(checkpoint)
    b = GraphBuilder(load=lambda name: load_float32(checkpoint.tensors[name]))
    x = _embeddings(b, shape)
    for index in range(shape.layers):
        x = _encoder_layer(b, x, index, shape)
    x = _pixel_unshuffle(b, b.layer_norm(x, f"{VISION}post_layernorm", shape.eps), shape)
    _projector(b, x, shape)
    patch_values = 3 * checkpoint.dims.patch_size**2
    inputs = [
        helper.make_tensor_value_info(INPUT_PIXELS, TensorProto.FLOAT, [1, "num_patches", patch_values]),
        helper.make_tensor_value_info(INPUT_SHAPES, TensorProto.INT64, [1, 2]),
    ]
    outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["num_image_tokens", checkpoint.dims.hidden])]
    graph = helper.make_graph(b.nodes, "lfm2_vl_vision", inputs, outputs, b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lfm-edge")
    model.ir_version = 9  # onnxruntime >= 1.16 reads IR 9
    return model
