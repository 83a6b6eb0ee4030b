"""``tinyhil bench experiment=kernels``: count per MAC of every kernel, per layer shape and (a, w) pair, against
the instruction-set floor (harness/ops/floor.py, docs/kernels.md).

One firmware image per layer shape holds the layer at all nine ``(a_bits, w_bits)`` pairs in {2, 4, 8}^2 (output
8-bit, and each pair again at every narrower output precision of ``o_bits``) plus the plain int8
``th_<op>_ref`` loop, each reading its own input and writing its own output. The input is loaded at 8 bits;
1x1 average pools re-quantize it to the 4- and 2-bit tensors the low-precision layers read (they are measured
too, but not reported). The add and average-pool shapes run at 8, 4 and 2 bits throughout (label ``a<bits>``).
Every layer runs once per image (one inference; counts are deterministic) and its output CRC is compared with
the numpy integer reference, so every figure comes with a bit-exactness verdict.

Outputs in the run folder: ``kernels.csv`` (one row per layer x pair x output bits, with ``floor`` and
``ratio_to_floor`` in the run's unit: instructions, or cycles of the board's core), ``kernels_heatmap.png``
(count per MAC, pair x layer) and the summary (flat keys: ``<layer>_<pair>_per_mac``, ``..._ratio_to_floor``,
``..._vs_a8w8``, ``..._o<bits>_growth_pct``; per op ``<op>_best_subbyte_pair`` and ``..._vs_a8w8``), and tables
on the console.
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
from harness.ops.floor import CORES, LayerGeometry, floor_per_mac
from harness.reference.run import run_layer
from harness.results.io import write_table
from harness.results.plotting import pyplot
from harness.synth.random_model import make_add_layer, make_avgpool_layer, make_weighted_layer, random_input

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
        if self.op in ("depthwise", "avgpool"):
            return oh * ow * self.cin * self.kernel * self.kernel
        if self.op == "add":
            return self.h * self.w * self.cin
        return oh * ow * self.cout * self.cin * self.kernel * self.kernel

    @property
    def weighted(self) -> bool:
        return self.op not in ("add", "avgpool")

    def geometry(self) -> LayerGeometry:
        """What the floor needs: reduction length, output channels, output pixels, stride, window taps."""
        oh, ow = self.out_hw
        taps = self.kernel * self.kernel
        k = taps * self.cin if self.op in ("conv2d", "pointwise", "fc") else taps
        return LayerGeometry(self.op, k, self.cout, oh * ow, self.stride, taps)

    def describe(self) -> str:
        if self.op == "fc":
            return f"{self.cin}->{self.cout}"
        if self.op == "add":
            return f"{self.h}x{self.w}x{self.cin}"
        k = f"{self.kernel}x{self.kernel} s{self.stride} p{self.pad} " if self.op != "pointwise" else ""
        ch = f"x{self.cin}" if self.op in ("depthwise", "avgpool") else f", {self.cin}->{self.cout}"
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
    # the default network's residual add and its global average pool (every tensor at one precision)
    LayerShape("add_24x24x8", "add", 24, 24, 8, 8),
    LayerShape("avgpool_3x3x1280", "avgpool", 3, 3, 1280, 1280, 3, 3),
)
#: Precisions of the add and average-pool shapes (both inputs and the output).
ELEMENTWISE_BITS = (8, 4, 2)


def pair_label(pair: tuple[int, int] | str) -> str:
    return pair if isinstance(pair, str) else f"a{pair[0]}w{pair[1]}"


def variant_label(label: str, o_bits: int) -> str:
    """A pair's label with its output precision when that is below 8 bits: ``a4w4``, ``a4w4_o2``."""
    return label if o_bits == 8 else f"{label}_o{o_bits}"


def _seed(seed: int, *what: object) -> np.random.Generator:
    """A generator seeded by what it builds, so a layer measures the same whatever else is in the image."""
    return np.random.default_rng([seed, zlib.crc32(repr(what).encode())])


@dataclass
class BenchImage:
    """One image: the model, and for each benchmarked layer its pair label and output bits."""

    model: IntModel
    shape: LayerShape
    layers: dict[str, str]  # layer name -> pair label ("a8w4", ..., "ref"; "a4" for add / avgpool)
    o_bits: dict[str, int] | None = None  # layer name -> output bits (8 when absent)


def build_image(
    shape: LayerShape,
    pairs: Sequence[tuple[int, int]] = PAIRS,
    ref: bool = True,
    seed: int = 0,
    relu_inputs: bool = False,
    o_bits: Sequence[int] = (8,),
) -> BenchImage:
    """The model of one image: input at 8 bits, 1x1 average pools to 4 and 2 bits, then ``shape`` at every pair
    and output precision in ``o_bits`` (and the ``_ref`` int8 loop), each layer writing its own output. Add and
    average-pool shapes run at ELEMENTWISE_BITS instead of pairs.

    ``relu_inputs``: the 4- and 2-bit inputs get the zero point at the bottom of their range, as activations
    after a ReLU (the 8-bit input always has it); otherwise their zero points sit where the data's mean lands.
    """
    x = TensorSpec("x8", (shape.h, shape.w, shape.cin), 8, scale=1.0 / 16, zero_point=-128)
    tensors: dict[str, TensorSpec] = {"x8": x}
    values = {"x8": random_input(x, _seed(seed, "input", shape.name))}
    layers, labels, obits = [], {}, {}
    feeds = {8: x}
    in_bits = sorted({a for a, _ in pairs} if shape.weighted else set(ELEMENTWISE_BITS))
    for bits in sorted((b for b in in_bits if b != 8), reverse=True):
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
    jobs: list[tuple[object, int]] = []
    if shape.weighted:
        jobs = [(p, o) for p in pairs for o in sorted(set(o_bits), reverse=True)] + (
            [(REF, 8)] if ref else []
        )
    else:
        jobs = [(f"a{b}", b) for b in ELEMENTWISE_BITS]
    for p, o in jobs:
        label = variant_label(pair_label(p), o) if shape.weighted else str(p)
        name = f"{shape.name}_{label}"
        rng = _seed(seed, "layer", shape.name, label)
        if shape.op == "add":
            src = feeds[int(str(p)[1:])]
            layer, t = make_add_layer(
                name,
                src,
                src,
                f"y_{label}",
                o_bits=o,
                act="relu",
                a_values=values[src.name],
                b_values=values[src.name],
                rng=rng,
            )
        elif shape.op == "avgpool":
            src = feeds[int(str(p)[1:])]
            layer, t = make_avgpool_layer(
                name,
                src,
                f"y_{label}",
                o_bits=o,
                kernel=shape.kernel,
                stride=shape.stride,
                x_values=values[src.name],
                rng=rng,
            )
        else:
            a, w = (8, 8) if p == REF else p
            layer, t = make_weighted_layer(
                name,
                shape.op,
                feeds[a],
                f"y_{label}",
                w_bits=w,
                o_bits=o,
                cout=shape.cout,
                kernel=shape.kernel,
                stride=shape.stride,
                padding=(shape.pad,) * 4,
                act="relu",
                x_values=values[feeds[a].name],
                rng=rng,
            )
            if p == REF:
                layer.meta["kernel_variant"] = "ref"  # the plain int8 loop: th_<op>_ref
        tensors[t.name] = t
        layers.append(layer)
        labels[name] = label
        obits[name] = o
    model = IntModel(tensors, layers, "x8", layers[-1].output, name=f"bench_{shape.name}")
    return BenchImage(model, shape, labels, obits)


def floor_columns(shape: LayerShape, a: int, w: int, macs: int, count: float, unit: str, core: str) -> dict:
    """``floor`` (the layer's instruction-set floor in ``unit``: instructions, or cycles of ``core``), its per-MAC
    value and ``ratio_to_floor``; NaN where no floor exists (cycles of a core without a model)."""
    if unit == "cycles" and core not in CORES:
        return {"floor_per_mac": float("nan"), "floor": float("nan"), "ratio_to_floor": float("nan")}
    per = floor_per_mac(shape.geometry(), a, w if w else a, unit, core if unit == "cycles" else None)
    return {"floor_per_mac": per, "floor": per * macs, "ratio_to_floor": count / (per * macs)}


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
        pair = label.split("_o")[0]
        rows.append(
            {
                "layer": img.shape.name,
                "op": img.shape.op,
                "shape": img.shape.describe(),
                "pair": pair,
                "variant": label,
                "a_bits": lm.a_bits,
                "w_bits": lm.w_bits,
                "o_bits": lm.o_bits,
                "kernel": f"th_{lm.op}_{pair}" if img.shape.weighted else f"th_{lm.op}",
                "macs": lm.macs,
                "count": lm.count,
                "count_per_mac": lm.count / lm.macs,
                **floor_columns(img.shape, lm.a_bits, lm.w_bits, lm.macs, lm.count, m.unit, board_cfg.core),
                "bit_exact": bool(lm.bit_exact),
                "board": m.board,
                "timer": m.timer,
                "unit": m.unit,
                "model_hash": f"{m.firmware_hash:08x}",
            }
        )
    return rows


def _main(df):
    """The rows of the weighted layers at 8-bit outputs (pairs and the _ref loop)."""
    return df[(df.o_bits == 8) & ~df.op.isin(["add", "avgpool"])] if "o_bits" in df else df


def _heatmap(df, path: Path, unit: str) -> Path:
    plt = pyplot()

    df = _main(df)
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
    ax.set_title(f"{unit} per MAC (lower is better), 8-bit outputs")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(f"log2 {unit}/MAC")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _r(v: float, nd: int = 4):
    return round(float(v), nd) if np.isfinite(v) else None


def summarize(df) -> dict:
    """Flat summary keys from the rows of :func:`measure_image`."""
    s: dict = {}
    if "variant" not in df:
        df = df.assign(variant=df["pair"])
    if "o_bits" not in df:
        df = df.assign(o_bits=8)
    for name in dict.fromkeys(df.layer):
        shape = next((x for x in LAYERS if x.name == name), None)
        sub = df[df.layer == name]
        per = dict(zip(sub.variant, sub.count_per_mac))
        for label, v in per.items():
            s[f"{name}_{label}_per_mac"] = round(float(v), 4)
        if "ratio_to_floor" in sub:
            for label, v in zip(sub.variant, sub.ratio_to_floor):
                if label != REF and _r(v) is not None:
                    s[f"{name}_{label}_ratio_to_floor"] = _r(v)
        i8 = per.get("a8w8")
        if i8 is not None and REF in per:
            s[f"int8_vs_ref_speedup_{name}"] = round(float(per[REF] / i8), 3)
        main = {p: v for p, v in per.items() if "_o" not in p and p != REF}
        if i8 is not None:
            s[f"{name}_beats_int8"] = [p for p in main if p != "a8w8" and main[p] < i8]
            for p, v in main.items():
                if p != "a8w8":
                    s[f"{name}_{p}_vs_a8w8"] = round(float(v / i8), 4)
            if shape is not None and shape.target is not None:
                s[f"{name}_a8w8_target"] = shape.target
                s[f"{name}_a8w8_meets_target"] = bool(i8 <= shape.target)
        if shape is not None and shape.library_a8w4 is not None and "a8w4" in per:
            s[f"{name}_a8w4_library"] = shape.library_a8w4
            s[f"{name}_a8w4_beats_library"] = bool(per["a8w4"] < shape.library_a8w4)
        for label, v in per.items():  # narrowing the output: the producer's growth over its 8-bit output
            if "_o" in label and label.split("_o")[0] in per:
                s[f"{name}_{label}_growth_pct"] = round(100.0 * (v / per[label.split("_o")[0]] - 1.0), 2)
    growth = [v for k, v in s.items() if k.endswith("_growth_pct")]
    if growth:
        s["narrow_output_growth_max_pct"] = max(growth)
    main = _main(df)
    for op, sub in main[main.pair != REF].groupby("op"):
        tot = sub.groupby("pair").apply(lambda g: g["count"].sum() / g["macs"].sum(), include_groups=False)
        for label, v in tot.items():
            s[f"{op}_{label}_per_mac"] = round(float(v), 4)
        if "a8w8" in tot:
            s[f"{op}_beats_int8"] = [p for p in tot.index if p != "a8w8" and tot[p] < tot["a8w8"]]
            sub_byte = tot.drop("a8w8")
            if not sub_byte.empty:
                best = str(sub_byte.idxmin())
                s[f"{op}_best_subbyte_pair"] = best
                s[f"{op}_best_subbyte_vs_a8w8"] = round(float(tot[best] / tot["a8w8"]), 4)
    return s


def print_table(df, unit: str, title: str) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=220)
    main = _main(df)
    labels = [pair_label(p) for p in PAIRS if pair_label(p) in set(main.pair)] + (
        [REF] if REF in set(main.pair) else []
    )
    t = Table(title=title)
    t.add_column("layer", justify="left")
    t.add_column("MACs", justify="right")
    for label in labels:
        t.add_column("a8w8 ref" if label == REF else label, justify="right")
    t.add_column("ref/a8w8", justify="right")
    t.add_column("target", justify="right")
    f = Table(title=f"{unit} per MAC / floor per MAC = ratio to the instruction-set floor (docs/kernels.md)")
    f.add_column("layer", justify="left")
    for label in labels:
        if label != REF:
            f.add_column(label, justify="right")
    for name in dict.fromkeys(main.layer):
        sub = main[main.layer == name].set_index("pair")
        shape = next((s for s in LAYERS if s.name == name), None)
        i8 = float(sub.loc["a8w8", "count_per_mac"]) if "a8w8" in sub.index else None
        cells, fcells = [], []
        for label in labels:
            if label not in sub.index:
                cells.append("-")
                if label != REF:
                    fcells.append("-")
                continue
            v = float(sub.loc[label, "count_per_mac"])
            txt = f"{v:.2f}" + ("" if bool(sub.loc[label, "bit_exact"]) else " NOT EXACT")
            if i8 is not None and label not in ("a8w8", REF) and v < i8:
                txt = f"[green]{txt}[/green]"
            cells.append(txt)
            if label != REF:
                fl = float(sub.loc[label, "floor_per_mac"]) if "floor_per_mac" in sub else float("nan")
                fcells.append(f"{v:.2f}/{fl:.2f}={v / fl:.2f}" if np.isfinite(fl) else "-")
        speed = f"{float(sub.loc[REF, 'count_per_mac']) / i8:.2f}x" if i8 and REF in sub.index else "-"
        target = f"{shape.target:.1f}" if shape is not None and shape.target is not None else "-"
        t.add_row(name, f"{int(sub['macs'].iloc[0]):,}", *cells, speed, target)
        f.add_row(name, *fcells)
    console.print(t)
    console.print(
        f"{unit} per MAC, one call of each layer; [green]green[/green]: fewer than a8w8 on that layer"
    )
    console.print(f)
    narrow = df[(df.o_bits < 8) & ~df.op.isin(["add", "avgpool"])] if "o_bits" in df else df.iloc[0:0]
    if not narrow.empty:
        n = Table(title="narrower outputs: the producer's count vs its 8-bit output (%)")
        n.add_column("layer", justify="left")
        obs = sorted(set(narrow.o_bits), reverse=True)
        for label in labels:
            if label != REF:
                for o in obs:
                    n.add_column(f"{label} o{o}", justify="right")
        for name in dict.fromkeys(narrow.layer):
            sub = df[df.layer == name].set_index("variant")
            cells = []
            for label in labels:
                if label == REF:
                    continue
                for o in obs:
                    v = variant_label(label, o)
                    cells.append(
                        f"{100.0 * (sub.loc[v, 'count'] / sub.loc[label, 'count'] - 1.0):+.1f}"
                        if v in sub.index and label in sub.index
                        else "-"
                    )
            n.add_row(name, *cells)
        console.print(n)
    elem = df[df.op.isin(["add", "avgpool"])]
    for name in dict.fromkeys(elem.layer):
        sub = elem[elem.layer == name]
        console.print(
            f"{name}: "
            + ", ".join(
                f"{r.variant} {r.count_per_mac:.2f} (floor {r.floor_per_mac:.2f})"
                + ("" if r.bit_exact else " NOT EXACT")
                for r in sub.itertuples()
            )
            + f" {unit} per element"
            + (" tap" if sub.op.iloc[0] == "avgpool" else "")
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
    o_bits = sorted({8, *(int(o) for o in e.o_bits)}, reverse=True)
    images = [build_image(s, pairs, ref, seed, relu, o_bits) for s in shapes]
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
        "mismatched": [f"{r.layer}_{r.variant}" for r in df.itertuples() if not r.bit_exact],
        "o_bits": o_bits,
        "core": board_cfg.core,
        **summarize(df),
        "host_seconds": round(time.perf_counter() - t0, 3),
    }
    return summary
