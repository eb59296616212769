"""The float weights a model computes with: quantized, float16 and codebook tensors decoded."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import ModelProto, NodeProto, TensorProto, helper, numpy_helper

from app.compression.graph.analysis import iter_graphs

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
_HALF_TYPES = {TensorProto.FLOAT16, TensorProto.BFLOAT16}
# Suffixes ORT's quantizers (and common codebook passes) append to the weight they replace.
_SUFFIX = re.compile(
    r"(_quantized|_Q[248]|_DQ_Q[248]|_Transposed|_indices|_idx|_codes|_codebook|_fp16)$"
)
# op type -> (weight input, scale input or None = "<base>_scale" by name, zero point, axis)
_WEIGHT_SLOTS: dict[str, tuple[int, int | None, int, int | None]] = {
    "MatMulInteger": (1, None, 3, -1),
    "ConvInteger": (1, None, 3, 0),
    "DynamicQuantizeMatMul": (1, 2, 3, -1),
    "MatMulIntegerToFloat": (1, 3, 5, -1),
    "QLinearConv": (3, 4, 5, 0),
    "QLinearMatMul": (3, 4, 5, -1),
    "QGemm": (3, 4, 5, -1),
    "Gather": (0, None, -1, None),  # ORT's 8-bit embedding tables: scale/zp only by name
}
# Inputs that hold quantization parameters, not weights (for counting weights).
_PARAM_SLOTS = {
    "QuantizeLinear": {1, 2},
    "DequantizeLinear": {1, 2},
    "MatMulInteger": {2, 3},
    "ConvInteger": {2, 3},
    "MatMulNBits": {2, 3},
    "DynamicQuantizeMatMul": {2, 3},
    "MatMulIntegerToFloat": {2, 3, 4, 5},
    "QLinearConv": {1, 2, 4, 5, 6, 7},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "QGemm": {1, 2, 4, 5, 7, 8},
}


@dataclass
class Weight:
    """One weight as the model uses it, in float32, with where it came from."""

    name: str  # the stored tensor: an initializer, or the quantized/packed/index tensor
    kind: str  # "float", "float16", "codebook", "int32_bias" or the decoding op ("MatMulNBits")
    values: np.ndarray
    step: np.ndarray | None = None  # quantization step, broadcastable to values
    candidates: tuple[str, ...] = ()  # names the original float tensor may have had
    params: tuple[str, ...] = field(default_factory=tuple)  # scales, zero points, codebooks


@dataclass
class Match:
    """A weight aligned with its original: both in the original's layout."""

    name: str  # the original tensor's name
    original: np.ndarray
    values: np.ndarray
    step: np.ndarray | None


def strip_suffixes(name: str) -> str:
    """Remove the suffixes quantizers append, repeatedly ("w_Transposed_quantized" -> "w")."""
    while (shorter := _SUFFIX.sub("", name)) != name:
        name = shorter
    return name


def _tensors(model: ModelProto) -> dict[str, TensorProto]:
    found: dict[str, TensorProto] = {}
    for graph in iter_graphs(model.graph):
        found.update((t.name, t) for t in graph.initializer)
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                found[node.output[0]] = node.attribute[0].t
    return found


def _attr(node: NodeProto, name: str, default: Any) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _per_axis(
    param: np.ndarray, shape: tuple[int, ...], axis: int | None, block: int = 0
) -> np.ndarray:
    """Reshape a scale or zero point so that it broadcasts against a weight of `shape`."""
    if param.size == 1 or axis is None:
        return param.reshape(()) if param.size == 1 else param
    axis %= len(shape)
    if block:  # blocked DequantizeLinear: same rank as the weight, one entry per block
        return np.repeat(param, block, axis=axis).take(range(shape[axis]), axis=axis)
    view = [1] * len(shape)
    view[axis] = param.size
    return param.reshape(view)


def _linear(
    tensors: dict[str, TensorProto],
    q: str,
    scale: str,
    zp: str | None,
    axis: int | None,
    block: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    data = numpy_helper.to_array(tensors[q]).astype(np.float64)
    s = _per_axis(numpy_helper.to_array(tensors[scale]).astype(np.float64), data.shape, axis, block)
    z: Any = 0.0
    if zp is not None and zp in tensors:
        raw = numpy_helper.to_array(tensors[zp]).astype(np.float64)
        z = _per_axis(raw, data.shape, axis, block)
    return ((data - z) * s).astype(np.float32), np.abs(s).astype(np.float32)


def _unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    # ORT packs the lowest bits first: element 2i in the low nibble, 2i+1 in the high one.
    flat = packed.astype(np.uint8).reshape((*packed.shape[:-1], -1))
    mask = (1 << bits) - 1
    parts = [(flat >> (bits * i)) & mask for i in range(8 // bits)]
    return np.stack(parts, axis=-1).reshape((*flat.shape[:-1], -1))


def _matmul_nbits(node: NodeProto, tensors: dict[str, TensorProto]) -> Weight | None:
    """Decode ORT's MatMulNBits B [N, blocks, blob] (see matmul_nbits_quantizer.py) to [K, N]."""
    b, scales = node.input[1], node.input[2]
    if b not in tensors or scales not in tensors:
        return None
    k, n = int(_attr(node, "K", 0)), int(_attr(node, "N", 0))
    bits, block = int(_attr(node, "bits", 4)), int(_attr(node, "block_size", 0))
    blocks = (k + block - 1) // block
    q = _unpack(numpy_helper.to_array(tensors[b]).reshape(n, blocks, -1), bits)[..., :block]
    scale = numpy_helper.to_array(tensors[scales]).astype(np.float64).reshape(n, blocks)
    zp_name = node.input[3] if len(node.input) > 3 and node.input[3] else None
    if zp_name is None:
        zp = np.full((n, blocks), 2.0 ** (bits - 1))  # symmetric: the mid level is zero
    else:
        raw = numpy_helper.to_array(tensors[zp_name])
        if raw.dtype == np.uint8:  # packed like B, one row of ceil(blocks * bits / 8) per column
            zp = _unpack(raw.reshape(n, -1), bits)[:, :blocks].astype(np.float64)
        else:  # float zero points (HQQ) are stored unpacked
            zp = raw.astype(np.float64).reshape(n, blocks)
    values = (q - zp[..., None]) * scale[..., None]
    step = np.broadcast_to(np.abs(scale)[..., None], values.shape)
    params = (scales,) + ((zp_name,) if zp_name else ())
    return Weight(
        name=b,
        kind="MatMulNBits",
        values=values.reshape(n, -1)[:, :k].T.astype(np.float32),
        step=step.reshape(n, -1)[:, :k].T.astype(np.float32),
        candidates=(strip_suffixes(b),),
        params=params,
    )


def _from_node(
    node: NodeProto, tensors: dict[str, TensorProto], aliases: dict[str, str]
) -> Weight | None:
    op, ins = node.op_type, list(node.input)
    if op == "MatMulNBits":
        return _matmul_nbits(node, tensors)
    if op == "DequantizeLinear" and ins[0] in tensors and ins[1] in tensors:
        zp = ins[2] if len(ins) > 2 and ins[2] else None
        dq_axis, block = int(_attr(node, "axis", 1)), int(_attr(node, "block_size", 0))
        values, step = _linear(tensors, ins[0], ins[1], zp, dq_axis, block)
        names = (node.output[0], strip_suffixes(ins[0]))
        return Weight(ins[0], op, values, step, names, (ins[1],) + ((zp,) if zp else ()))
    # Gather only takes int32/int64 indices: codebook passes store uint8 ones behind a Cast.
    indices = aliases.get(ins[1], ins[1]) if op == "Gather" else ""
    if op == "Gather" and ins[0] in tensors and indices in tensors:
        table, index = tensors[ins[0]], tensors[indices]
        if table.data_type in _FLOAT_TYPES:  # a codebook: the weight is table[indices]
            values = np.take(numpy_helper.to_array(table), numpy_helper.to_array(index), axis=0)
            guesses = (node.output[0], strip_suffixes(indices), strip_suffixes(ins[0]))
            return Weight(indices, "codebook", values.astype(np.float32), None, guesses, (ins[0],))
    slots = _WEIGHT_SLOTS.get(op)
    if slots is None or len(ins) <= slots[0] or ins[slots[0]] not in tensors:
        return None
    w_slot, s_slot, zp_slot, slot_axis = slots
    weight = ins[w_slot]
    if tensors[weight].data_type not in (TensorProto.INT8, TensorProto.UINT8):
        return None
    base = strip_suffixes(weight)
    # ORT names them after the weight minus "_quantized" ("fc.weight_Transposed_scale").
    stem = weight.removesuffix("_quantized")
    scale = ins[s_slot] if s_slot is not None and len(ins) > s_slot else f"{stem}_scale"
    zp = ins[zp_slot] if 0 <= zp_slot < len(ins) and ins[zp_slot] else f"{stem}_zero_point"
    if scale not in tensors:
        return None
    axis = 0 if op == "QGemm" and _attr(node, "transB", 0) else slot_axis
    values, step = _linear(tensors, weight, scale, zp if zp in tensors else None, axis)
    return Weight(weight, op, values, step, (base,), (scale,) + ((zp,) if zp in tensors else ()))


def _int32_bias(node: NodeProto, tensors: dict[str, TensorProto]) -> Weight | None:
    # QLinearConv / QGemm keep the bias as int32 in units of input scale x weight scale.
    slot = {"QLinearConv": 8, "QGemm": 6}.get(node.op_type)
    ins = list(node.input)
    if (
        slot is None
        or len(ins) <= slot
        or not all(i in tensors for i in (ins[1], ins[4], ins[slot]))
    ):
        return None
    w_scale = numpy_helper.to_array(tensors[ins[4]]).astype(np.float64).ravel()
    scale = numpy_helper.to_array(tensors[ins[1]]).astype(np.float64).ravel() * w_scale
    values = numpy_helper.to_array(tensors[ins[slot]]).astype(np.float64) * scale
    step = np.abs(scale).astype(np.float32)
    name = ins[slot]
    return Weight(name, "int32_bias", values.astype(np.float32), step, (strip_suffixes(name),))


def dequantized_weights(model: ModelProto) -> list[Weight]:
    """Every quantized, float16 or codebook weight of the model, decoded to float32."""
    tensors = _tensors(model)
    aliases = {
        node.output[0]: node.input[0]
        for graph in iter_graphs(model.graph)
        for node in graph.node
        if node.op_type in ("Cast", "Identity") and node.input[0] in tensors
    }
    found: dict[str, Weight] = {}
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            for weight in (_from_node(node, tensors, aliases), _int32_bias(node, tensors)):
                if weight is not None:
                    found.setdefault(weight.name, weight)
    params = {p for w in found.values() for p in w.params}
    for name, tensor in tensors.items():
        if tensor.data_type in _HALF_TYPES and name not in params and name not in found:
            values = numpy_helper.to_array(tensor).astype(np.float32)
            found[name] = Weight(name, "float16", values, None, (name, strip_suffixes(name)))
    return list(found.values())


def quant_params(model: ModelProto) -> set[str]:
    """Names of tensors used as scales or zero points rather than as weights."""
    tensors = _tensors(model)
    names: set[str] = set()
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            slots = _PARAM_SLOTS.get(node.op_type, set())
            generic = node.op_type.startswith("QLinear") and not slots
            for i, name in enumerate(node.input):
                if i in slots or (generic and name in tensors and _size(tensors[name]) == 1):
                    names.add(name)
    return names


def _size(tensor: TensorProto) -> int:
    return int(np.prod(tensor.dims)) if tensor.dims else 1


def effective_weights(model: ModelProto) -> dict[str, Weight]:
    """Float weights by stored name: decoded quantized ones plus plain float initializers."""
    decoded = {w.name: w for w in dequantized_weights(model)}
    skip = quant_params(model) | {p for w in decoded.values() for p in w.params}
    for name, tensor in _tensors(model).items():
        if tensor.data_type in _FLOAT_TYPES and name not in skip and name not in decoded:
            values = numpy_helper.to_array(tensor).astype(np.float32)
            decoded[name] = Weight(name, "float", values, None, (name,))
    return decoded


def match_original(weight: Weight, originals: dict[str, np.ndarray]) -> Match | None:
    """The original float tensor a decoded weight stands for, both in the original's layout."""
    for name in weight.candidates:
        original = originals.get(name)
        if original is None or original.size != weight.values.size:
            continue
        step = None if weight.step is None else np.broadcast_to(weight.step, weight.values.shape)
        if original.shape == weight.values.shape:
            return Match(name, original, weight.values, step)
        if original.ndim == 2 and weight.values.shape == original.shape[::-1]:
            # ORT's Gemm rewrite stores B transposed ("<name>_Transposed").
            return Match(name, original, weight.values.T, None if step is None else step.T)
        reshaped = None if step is None else step.reshape(original.shape)
        return Match(name, original, weight.values.reshape(original.shape), reshaped)
    return None
