"""C code generation: an :class:`~harness.ir.model.IntModel` becomes ``model_data.c`` for the firmware.

The file defines what ``firmware/runtime/include/th_model.h`` declares: ``th_model`` (tensor and layer tables),
``th_arena`` and ``th_scratch`` sized by the arena plan, with packed weights as aligned ``static const uint8_t``
arrays. Each layer's ``fn`` names the kernel for its (op, a_bits, w_bits), so a linker run with
``--gc-sections`` drops every kernel the model does not use.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from harness import ops
from harness.errors import ConfigError, InternalError
from harness.ir.model import IntLayer, IntModel
from harness.ir.packing import packed_weights
from harness.memory.arena import ArenaPlan, plan_arena
from harness.memory.estimate import MemoryEstimate
from harness.ops.validate import validate_model

# Flash of the fixed per-model tables (with 32-bit pointers), for the fit estimate.
_TENSOR_BYTES = 12  # sizeof(th_tensor_t)
_LAYER_BYTES = 84  # sizeof(th_layer_t)
_MODEL_BYTES = 40


def layer_variant(layer: IntLayer, variant: str = "opt") -> str:
    """The kernel variant of one layer: its own ``meta['kernel_variant']`` if set, else the model's."""
    return str(layer.meta.get("kernel_variant", variant))


def layer_kernel(model: IntModel, layer: IntLayer, variant: str = "opt") -> str:
    """The C kernel one layer of ``model`` runs."""
    return ops.kernel_symbol(layer.op, model.a_bits(layer), layer.w_bits, layer_variant(layer, variant))


def _used_tensors(model: IntModel) -> list[str]:
    names = [model.input]
    for layer in model.layers:
        for t in [*layer.inputs, layer.output]:
            if t not in names:
                names.append(t)
    return names


def model_hash(model: IntModel) -> int:
    """A 32-bit fingerprint of everything that changes the firmware's results (first 4 bytes of a SHA-256)."""
    h = hashlib.sha256()
    tens = {n: [list(t.shape), t.bits, t.zero_point] for n, t in model.tensors.items()}
    h.update(json.dumps([model.name, model.input, model.output, tens], sort_keys=True).encode())
    for layer in model.layers:
        p = layer.add
        desc = [
            layer.name,
            layer.op,
            layer.inputs,
            layer.output,
            list(layer.kernel),
            layer.stride,
            list(layer.padding),
            layer.w_bits,
            layer.act_min,
            layer.act_max,
            None
            if p is None
            else [
                p.left_shift,
                p.in1_multiplier,
                p.in1_shift,
                p.in2_multiplier,
                p.in2_shift,
                p.out_multiplier,
                p.out_shift,
            ],
        ]
        h.update(json.dumps(desc).encode())
        h.update(packed_weights(layer))
        for arr in (layer.bias, layer.multiplier, layer.shift):
            if arr is not None:
                h.update(np.asarray(arr, dtype="<i4").tobytes())
    return int.from_bytes(h.digest()[:4], "little")


def _c_ident(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def _c_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("?")  # names are labels only; keep the C file plain ASCII
    return '"' + "".join(out) + '"'


def _bytes_init(data: bytes, per_line: int = 20) -> str:
    lines = []
    for i in range(0, len(data), per_line):
        lines.append("    " + ", ".join(f"0x{b:02X}" for b in data[i : i + per_line]) + ",")
    return "\n".join(lines)


def _ints_init(values, per_line: int = 10) -> str:
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    lines = []
    for i in range(0, len(vals), per_line):
        # INT32_MIN as a literal is a unary minus applied to an out-of-range int: write it as an expression
        lines.append(
            "    "
            + ", ".join("(-2147483647 - 1)" if v == -(1 << 31) else str(v) for v in vals[i : i + per_line])
            + ","
        )
    return "\n".join(lines)


def int_arrays(layer: IntLayer) -> dict[str, np.ndarray]:
    """The layer's int32 constant arrays the table points at (``bias``, ``mult``, ``shift``, as its op says)."""
    arrays = ops.get(layer.op).arrays
    out = {}
    for key, arr in (("bias", layer.bias), ("mult", layer.multiplier), ("shift", layer.shift)):
        if arr is not None and key in arrays:
            out[key] = np.asarray(arr).reshape(-1).astype(np.int64)
    return out


def _layer_arrays(i: int, layer: IntLayer) -> tuple[list[str], dict[str, str]]:
    """C definitions of one layer's constant arrays, and the field initialisers that point at them."""
    defs, fields = [], {}
    w = packed_weights(layer)
    if w:
        defs.append(
            f"/* {c_comment(layer.name)}: {layer.op} weights {tuple(np.asarray(layer.weight).shape)} at "
            f"{layer.w_bits} bits */\n"
            f"static const uint8_t w{i}[{len(w)}] __attribute__((aligned(4))) = {{\n{_bytes_init(w)}\n}};"
        )
        fields["weights"] = f"w{i}"
    for key, a in int_arrays(layer).items():
        defs.append(f"static const int32_t {key}{i}[{a.size}] = {{\n{_ints_init(a)}\n}};")
        fields[key] = f"{key}{i}"
    return defs, fields


def layer_init(
    layer: IntLayer,
    *,
    fn: str,
    a_bits: int,
    o_bits: int,
    index: dict[str, int],
    padding: tuple[int, int, int, int],
    macs: int,
    arrays: dict[str, str],
) -> str:
    """The ``th_layer_t`` initializer of one layer (``arrays``: field -> C array name it points at)."""
    init = {
        "fn": fn,
        "name": _c_string(layer.name),
        "op": ops.get(layer.op).c_enum,
        "a_bits": a_bits,
        "w_bits": layer.w_bits if layer.weight is not None else 8,
        "o_bits": o_bits,
        "kh": layer.kernel[0],
        "kw": layer.kernel[1],
        "stride": layer.stride,
        "pad_t": padding[0],
        "pad_l": padding[1],
        "pad_b": padding[2],
        "pad_r": padding[3],
        "in": index[layer.inputs[0]],
        "in2": index[layer.inputs[1]] if len(layer.inputs) > 1 else -1,
        "out": index[layer.output],
        "act_min": layer.act_min,
        "act_max": layer.act_max,
        **arrays,
        "macs": f"{min(macs, 0xFFFFFFFF)}u",
        **ops.get(layer.op).c_fields(layer),
    }
    return "{" + ", ".join(f".{k} = {_c_int(v)}" for k, v in init.items()) + "}"


def render_model_c(model: IntModel, plan: ArenaPlan, variant: str = "opt") -> str:
    """The text of model_data.c (no validation; :func:`emit_model_c` validates first)."""
    names = _used_tensors(model)
    index = {n: i for i, n in enumerate(names)}
    mhash = model_hash(model)
    parts = [
        (
            f"/* Generated by harness.codegen.emit_c from model {c_comment(repr(model.name))}: {len(model.layers)} layers, "
            f"hash 0x{mhash:08X}, kernels '{variant}'. Do not edit. */"
        ),
        "#include <stdint.h>\n",
        '#include "th_kernels.h"\n',
    ]
    layer_inits = []
    for i, layer in enumerate(model.layers):
        defs, f = _layer_arrays(i, layer)
        parts.extend(defs)
        body = layer_init(
            layer, fn=layer_kernel(model, layer, variant), a_bits=model.a_bits(layer),
            o_bits=model.o_bits(layer), index=index, padding=tuple(layer.padding),
            macs=ops.macs(model, layer), arrays=f,
        )  # fmt: skip
        layer_inits.append(f"    {body},")
    tens = []
    for n in names:
        t = model.tensors[n]
        h, w_, c = t.shape
        tens.append(
            f"    {{{plan.offsets[n]}u, {h}, {w_}, {c}, {t.bits}, {t.zero_point}}}, /* {c_comment(n)} */"
        )
    parts.append(f"static const th_tensor_t tensors[{len(names)}] = {{\n" + "\n".join(tens) + "\n};")
    parts.append(
        f"static const th_layer_t layers[{len(model.layers)}] = {{\n" + "\n".join(layer_inits) + "\n};"
    )
    parts.append(f"uint8_t th_arena[{plan.arena_bytes}] __attribute__((aligned(16)));")
    parts.append(f"uint8_t th_scratch[{plan.scratch_bytes}] __attribute__((aligned(16)));")
    parts.append(
        "const th_model_t th_model = {\n"
        f"    .name = {_c_string(model.name)},\n"
        f"    .n_layers = {len(model.layers)},\n"
        f"    .n_tensors = {len(names)},\n"
        "    .layers = layers,\n"
        "    .tensors = tensors,\n"
        f"    .input = {index[model.input]},\n"
        f"    .output = {index[model.output]},\n"
        f"    .arena_size = {plan.arena_bytes}u,\n"
        f"    .scratch_size = {plan.scratch_bytes}u,\n"
        f"    .hash = 0x{mhash:08X}u,\n"
        "};"
    )
    return "\n\n".join(parts) + "\n"


def _c_int(v) -> str:
    if isinstance(v, (int, np.integer)) and int(v) == -(1 << 31):
        return "(-2147483647 - 1)"
    return str(v)


def c_comment(s: str) -> str:
    """``s`` made safe inside a C block comment: printable ASCII only, and no comment delimiter (a model or layer
    name like ``*/ #error x /*`` must not end the comment and inject code)."""
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(s))
    while "*/" in text or "/*" in text:
        text = text.replace("*/", "* /").replace("/*", "/ *")
    return text


def render_model_h(model: IntModel, plan: ArenaPlan) -> str:
    """A small header with the model's sizes and hash as macros (for build-time checks and the host)."""
    names = _used_tensors(model)
    guard = "TH_MODEL_DATA_H"
    return (
        f"/* Generated by harness.codegen.emit_c for model {c_comment(repr(model.name))}. Do not edit. */\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"#define TH_MODEL_HASH 0x{model_hash(model):08X}u\n"
        f"#define TH_MODEL_N_LAYERS {len(model.layers)}\n"
        f"#define TH_MODEL_N_TENSORS {len(names)}\n"
        f"#define TH_MODEL_ARENA_BYTES {plan.arena_bytes}u\n"
        f"#define TH_MODEL_SCRATCH_BYTES {plan.scratch_bytes}u\n"
        f"#define TH_MODEL_INPUT_BYTES {model.tensors[model.input].nbytes}u\n"
        f"#define TH_MODEL_OUTPUT_BYTES {model.tensors[model.output].nbytes}u\n\n"
        f"#endif /* {guard} */\n"
    )


def emit_model_c(
    model: IntModel,
    out_dir: Path | str,
    plan: ArenaPlan | None = None,
    *,
    variant: str = "opt",
    header: bool = True,
) -> list[Path]:
    """Validate ``model`` and write ``model_data.c`` (and ``model_data.h``) into ``out_dir``; returns the paths.

    ``variant='ref'`` points every a8w8 conv2d/depthwise/pointwise/fc layer at its plain ``*_ref`` kernel.
    """
    validate_model(model)
    if variant not in ops.VARIANTS:
        raise ConfigError(f"kernel variant must be one of {ops.VARIANTS}, got {variant!r}")
    plan = plan if plan is not None else plan_arena(model, validate=False)
    missing = [t for t in _used_tensors(model) if t not in plan.offsets]
    if missing:
        raise InternalError(f"the arena plan has no offset for tensors {missing}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "model_data.c"]
    paths[0].write_text(render_model_c(model, plan, variant))
    if header:
        paths.append(out_dir / "model_data.h")
        paths[1].write_text(render_model_h(model, plan))
    return paths


def kernel_symbols(model: IntModel, variant: str = "opt") -> list[str]:
    """The distinct kernels a model's layer table points at."""
    return sorted({layer_kernel(model, layer, variant) for layer in model.layers})


def estimate_footprint(model: IntModel, plan: ArenaPlan | None = None, variant: str = "opt") -> MemoryEstimate:
    """What ``model`` adds to a firmware: arena and scratch (SRAM), its constant data (weights, bias,
    requantization, names, tensor and layer tables: flash) and the kernels it runs, whose code the fit check
    measures by linking them (harness.build.fit)."""
    validate_model(model)
    plan = plan if plan is not None else plan_arena(model, validate=False)
    flash = _MODEL_BYTES + _TENSOR_BYTES * len(_used_tensors(model)) + _LAYER_BYTES * len(model.layers)
    for layer in model.layers:
        flash += (len(packed_weights(layer)) + 3) // 4 * 4
        flash += sum(4 * a.size for a in int_arrays(layer).values())
        flash += len(layer.name) + 1
    return MemoryEstimate(arena=plan.arena_bytes, scratch=plan.scratch_bytes, weights=int(flash),
                          kernels=tuple(kernel_symbols(model, variant)))
