"""``tinyhil bench experiment=kernels``: instructions per MAC of every kernel, per layer shape and (a, w) pair.

One firmware image per layer shape holds the layer at all nine ``(a_bits, w_bits)`` pairs in {2, 4, 8}^2
(output 8-bit) plus the plain int8 ``th_<op>_ref`` loop, each reading its own input and writing its own output,
so that 8 shapes need 8 builds. The input is loaded at 8 bits; two 1x1 average pools re-quantize it to the 4-
and 2-bit tensors the low-precision layers read (they are measured too, but not reported). Every layer runs once
per image (one inference; QEMU's instruction counts are deterministic) and its output CRC is compared with the
numpy integer reference, so every figure comes with a bit-exactness verdict.

Outputs in the run folder: ``kernels.csv`` (one row per layer x pair), ``kernels_heatmap.png`` (instructions
per MAC, pair x layer) and the summary (flat keys ``<layer>_<pair>_per_mac``, ``<layer>_ref_per_mac``,
``int8_vs_ref_speedup_<layer>``, ``<layer>_beats_int8``), and a table on the console.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from harness.boards import make_board
from harness.codegen.artifact import layer_artifact
from harness.errors import ConfigError
from harness.experiments.common import board_from, workdir
from harness.ir.model import IntModel, TensorSpec
from harness.measure.session import Session
from harness.reference.run import run_layer
from harness.results.io import write_table
from harness.results.plotting import pyplot
from harness.synth.random_model import make_avgpool_layer, make_weighted_layer, random_input

PAIRS: tuple[tuple[int, int], ...] = tuple((a, w) for a in (8, 4, 2) for w in (8, 4, 2))
REF = "ref"  # the pair label of the plain int8 loop


@dataclass(frozen=True)
class LayerShape:
    """One benchmarked layer shape. ``target``: the issue's a8w8 instructions/MAC goal (None: no goal);
    ``library_a8w4``: what a published library needs at a8w4 (None: unknown)."""

    name: str
    op: str
    h: int
    w: int
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    target: float | None = None
    library_a8w4: float | None = None

    @property
    def out_hw(self) -> tuple[int, int]:
        o = lambda n: (n + 2 * self.pad - self.kernel) // self.stride + 1
        return o(self.h), o(self.w)

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        if self.op == "depthwise":
            return oh * ow * self.cin * self.kernel * self.kernel
        return oh * ow * self.cout * self.cin * self.kernel * self.kernel

    def describe(self) -> str:
        if self.op == "fc":
            return f"{self.cin}->{self.cout}"
        k = f"{self.kernel}x{self.kernel} s{self.stride} p{self.pad} " if self.op != "pointwise" else ""
        ch = f"x{self.cin}" if self.op == "depthwise" else f", {self.cin}->{self.cout}"
        return f"{k}{self.h}x{self.w}{ch}"


#: The layers the issue names (MobileNet-style shapes), with its a8w8 targets and a library's a8w4 figures.
LAYERS: tuple[LayerShape, ...] = (
    LayerShape("conv3x3_s1_16x16_16to16", "conv2d", 16, 16, 16, 16, 3, 1, 1, 2.3, 4.1),
    LayerShape("conv3x3_s2_32x32_3to16", "conv2d", 32, 32, 3, 16, 3, 2, 1, 4.8),
    LayerShape("dw3x3_s1_16x16x48", "depthwise", 16, 16, 48, 48, 3, 1, 1, 8.0),
    LayerShape("dw3x3_s2_32x32x48", "depthwise", 32, 32, 48, 48, 3, 2, 1, 8.1),
    LayerShape("pw_16x16_16to48", "pointwise", 16, 16, 16, 48, target=4.0, library_a8w4=5.8),
    LayerShape("pw_8x8_96to24", "pointwise", 8, 8, 96, 24, target=1.9),
    LayerShape("fc_256to10", "fc", 1, 1, 256, 10, target=2.2, library_a8w4=5.2),
    LayerShape("fc_1024to64", "fc", 1, 1, 1024, 64, target=1.9),
)


def pair_label(pair: tuple[int, int] | str) -> str:
    return pair if isinstance(pair, str) else f"a{pair[0]}w{pair[1]}"


def _seed(seed: int, *what: object) -> np.random.Generator:
    """A generator seeded by what it builds, so a layer measures the same whatever else is in the image."""
    return np.random.default_rng([seed, zlib.crc32(repr(what).encode())])


@dataclass
class BenchImage:
    """One image: the model, and for each benchmarked layer its (shape, pair label)."""

    model: IntModel
    shape: LayerShape
    layers: dict[str, str]  # layer name -> pair label ("a8w4", ..., "ref")


def build_image(
    shape: LayerShape,
    pairs: Sequence[tuple[int, int]] = PAIRS,
    ref: bool = True,
    seed: int = 0,
    relu_inputs: bool = False,
) -> BenchImage:
    """The model of one image: input at 8 bits, 1x1 average pools to 4 and 2 bits, then ``shape`` at every pair
    (and the ``_ref`` int8 loop), each layer writing its own 8-bit output.

    ``relu_inputs``: the 4- and 2-bit inputs get the zero point at the bottom of their range, as activations
    after a ReLU (the 8-bit input always has it); otherwise their zero points sit where the data's mean lands.
    """
    x = TensorSpec("x8", (shape.h, shape.w, shape.cin), 8, scale=1.0 / 16, zero_point=-128)
    tensors: dict[str, TensorSpec] = {"x8": x}
    values = {"x8": random_input(x, _seed(seed, "input", shape.name))}
    layers, labels = [], {}
    feeds = {8: x}
    for bits in sorted({a for a, _ in pairs if a != 8}, reverse=True):
        layer, t = make_avgpool_layer(
            f"requant_to_a{bits}",
            x,
            f"x{bits}",
            o_bits=bits,
            kernel=1,
            stride=1,
            x_values=values["x8"],
            rng=_seed(seed, "feed", shape.name, bits),
        )
        if relu_inputs:
            t.zero_point = -(1 << (bits - 1))
        tensors[t.name] = t
        layers.append(layer)
        values[t.name] = run_layer(IntModel(tensors, [], "x8", t.name), layer, values)
        feeds[bits] = t
    jobs: list[tuple[int, int] | str] = list(pairs) + ([REF] if ref else [])
    for p in jobs:
        a, w = (8, 8) if p == REF else p
        label = pair_label(p)
        name = f"{shape.name}_{label}"
        layer, t = make_weighted_layer(
            name,
            shape.op,
            feeds[a],
            f"y_{label}",
            w_bits=w,
            o_bits=8,
            cout=shape.cout,
            kernel=shape.kernel,
            stride=shape.stride,
            padding=(shape.pad,) * 4,
            act="relu",
            x_values=values[feeds[a].name],
            rng=_seed(seed, "layer", shape.name, label),
        )
        if p == REF:
            layer.meta["kernel_variant"] = "ref"  # the plain int8 loop: th_<op>_ref
        tensors[t.name] = t
        layers.append(layer)
        labels[name] = label
    model = IntModel(tensors, layers, "x8", layers[-1].output, name=f"bench_{shape.name}")
    return BenchImage(model, shape, labels)


def measure_image(img: BenchImage, board_cfg, wdir: Path, seed: int = 0) -> list[dict]:
    """Build, run once on the board and check bit-exactness; one row per benchmarked layer."""
    model = img.model
    x = random_input(model.tensors[model.input], _seed(seed, "input", img.shape.name))
    board = make_board(board_cfg)
    try:
        m = Session(board, wdir).run(layer_artifact(model), [x], require_exact=False)
    finally:
        board.close()
    rows = []
    for lm in m.layers:
        if lm.name not in img.layers:
            continue
        label = img.layers[lm.name]
        rows.append(
            {
                "layer": img.shape.name,
                "op": img.shape.op,
                "shape": img.shape.describe(),
                "pair": label,
                "a_bits": lm.a_bits,
                "w_bits": lm.w_bits,
                "o_bits": lm.o_bits,
                "kernel": f"th_{lm.op}_{label}",
                "macs": lm.macs,
                "count": lm.count,
                "count_per_mac": lm.count / lm.macs,
                "bit_exact": bool(lm.bit_exact),
                "board": m.board,
                "timer": m.timer,
                "unit": m.unit,
                "model_hash": f"{m.firmware_hash:08x}",
            }
        )
    return rows


def _heatmap(df, path: Path, unit: str) -> Path:
    plt = pyplot()

    order_rows = [pair_label(p) for p in PAIRS] + [REF]
    piv = df.pivot_table(index="pair", columns="layer", values="count_per_mac", aggfunc="first")
    cols = [s.name for s in LAYERS if s.name in piv.columns] + [
        c for c in piv.columns if c not in {s.name for s in LAYERS}
    ]
    piv = piv.reindex(index=[r for r in order_rows if r in piv.index], columns=cols)
    ops = df.drop_duplicates("layer").set_index("layer")["op"]
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 0.5 * len(piv.index) + 2.2))
    data = piv.to_numpy(dtype=float)
    im = ax.imshow(np.log2(data), cmap="viridis_r", aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                ax.text(
                    j,
                    i,
                    f"{data[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if np.log2(data[i, j]) > np.nanmean(np.log2(data)) else "black",
                )
    ax.set_xticks(range(len(cols)), [f"{ops[c]}\n{c}" for c in cols], rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(piv.index)), [("a8w8 _ref" if r == REF else r) for r in piv.index])
    ax.set_title(f"{unit} per MAC (lower is better)")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(f"log2 {unit}/MAC")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summarize(df) -> dict:
    """Flat summary keys from the rows of :func:`measure_image`."""
    s: dict = {}
    for shape in LAYERS:
        sub = df[df.layer == shape.name]
        if sub.empty:
            continue
        per = dict(zip(sub.pair, sub.count_per_mac))
        for label, v in per.items():
            s[f"{shape.name}_{label}_per_mac"] = round(float(v), 4)
        i8 = per.get("a8w8")
        if i8 is not None and REF in per:
            s[f"int8_vs_ref_speedup_{shape.name}"] = round(float(per[REF] / i8), 3)
        if i8 is not None:
            s[f"{shape.name}_beats_int8"] = [p for p in per if p not in ("a8w8", REF) and per[p] < i8]
            if shape.target is not None:
                s[f"{shape.name}_a8w8_target"] = shape.target
                s[f"{shape.name}_a8w8_meets_target"] = bool(i8 <= shape.target)
        if shape.library_a8w4 is not None and "a8w4" in per:
            s[f"{shape.name}_a8w4_library"] = shape.library_a8w4
            s[f"{shape.name}_a8w4_beats_library"] = bool(per["a8w4"] < shape.library_a8w4)
    for op, sub in df[df.pair != REF].groupby("op"):
        tot = sub.groupby("pair").apply(lambda g: g["count"].sum() / g["macs"].sum(), include_groups=False)
        for label, v in tot.items():
            s[f"{op}_{label}_per_mac"] = round(float(v), 4)
        if "a8w8" in tot:
            s[f"{op}_beats_int8"] = [p for p in tot.index if p != "a8w8" and tot[p] < tot["a8w8"]]
    return s


def print_table(df, unit: str, title: str) -> None:
    t = Table(title=title)
    t.add_column("layer", justify="left")
    t.add_column("MACs", justify="right")
    labels = [pair_label(p) for p in PAIRS if pair_label(p) in set(df.pair)] + (
        [REF] if REF in set(df.pair) else []
    )
    for label in labels:
        t.add_column("a8w8 ref" if label == REF else label, justify="right")
    t.add_column("ref/a8w8", justify="right")
    t.add_column("target", justify="right")
    for name in dict.fromkeys(df.layer):
        sub = df[df.layer == name].set_index("pair")
        shape = next((s for s in LAYERS if s.name == name), None)
        i8 = float(sub.loc["a8w8", "count_per_mac"]) if "a8w8" in sub.index else None
        cells = []
        for label in labels:
            if label not in sub.index:
                cells.append("-")
                continue
            v = float(sub.loc[label, "count_per_mac"])
            txt = f"{v:.2f}" + ("" if bool(sub.loc[label, "bit_exact"]) else " NOT EXACT")
            if i8 is not None and label not in ("a8w8", REF) and v < i8:
                txt = f"[green]{txt}[/green]"
            cells.append(txt)
        speed = f"{float(sub.loc[REF, 'count_per_mac']) / i8:.2f}x" if i8 and REF in sub.index else "-"
        target = f"{shape.target:.1f}" if shape is not None and shape.target is not None else "-"
        t.add_row(name, f"{int(sub['macs'].iloc[0]):,}", *cells, speed, target)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(t)
    console.print(
        f"{unit} per MAC, one call of each layer; [green]green[/green]: fewer than a8w8 on that layer"
    )


def select_shapes(names: Sequence[str] | None) -> list[LayerShape]:
    if not names:
        return list(LAYERS)
    known = {s.name: s for s in LAYERS}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"unknown benchmark layers {missing}; known: {', '.join(known)}")
    return [known[n] for n in names]


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t0 = time.perf_counter()
    e = cfg.experiment
    shapes = select_shapes(list(e.layers))
    pairs = [tuple(int(v) for v in p) for p in e.pairs]
    ref = bool(e.ref)
    seed = int(cfg.seed)
    board = board_from(cfg)
    board_cfg = board.cfg
    relu = bool(e.relu_inputs)
    images = [build_image(s, pairs, ref, seed, relu) for s in shapes]
    jobs = max(1, int(e.jobs))
    base = workdir(cfg, "bench_kernels", board.name)

    console = Console()

    def one(i: int) -> list[dict]:
        rows = measure_image(images[i], board_cfg, base / images[i].shape.name, seed)
        console.print(f"  {images[i].shape.name}: {len(rows)} kernels measured")
        return rows

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = [r for rs in pool.map(one, range(len(images))) for r in rs]
    df = pd.DataFrame(rows)
    write_table(df, Path(run_dir) / "kernels.csv")
    unit = str(df["unit"].iloc[0])
    _heatmap(df, Path(run_dir) / "kernels_heatmap.png", unit)
    print_table(df, unit, f"kernels on {board.name} ({df['timer'].iloc[0]}, {unit} per MAC)")
    summary = {
        "experiment": "kernels",
        "board": board.name,
        "timer": str(df["timer"].iloc[0]),
        "unit": unit,
        "n_images": len(images),
        "relu_inputs": relu,
        "n_kernels": len(df),
        "bit_exact": bool(df["bit_exact"].all()),
        "mismatched": [f"{r.layer}_{r.pair}" for r in df.itertuples() if not r.bit_exact],
        **summarize(df),
        "host_seconds": round(time.perf_counter() - t0, 3),
    }
    return summary
