"""``tinyhil profile board=... model=...``: the latency lookup table of a model's layer shapes on a board.

Builds the zoo model, extracts its fused layers, and measures every missing table entry in batch images
(:mod:`harness.measure.profile`). Prints the table's a8w8-relative speed of every (a, w) pair and writes
``summary.json`` (board, timer, n_entries, n_new, n_images, seconds).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.config.board import load_board_config
from harness.config.schema import ProfileSchema
from harness.experiments.common import board_from, workdir
from harness.graph.trace import extract_layers
from harness.measure.profile import ProfileSettings, default_budget, profile_layers
from harness.measure.target import table_path
from harness.models.registry import build_int_model, build_model, is_integer
from harness.tflite import layer_specs


def settings_from(block, board, seed: int = 0):
    """:class:`ProfileSettings` from a ``profile`` config block (:class:`~harness.config.schema.ProfileSchema`
    holds every key's default; a plain mapping may give only some keys)."""
    p = {**asdict(ProfileSchema()), **_plain(block)}
    board = load_board_config(board)
    return ProfileSettings(
        a_bits=tuple(p["a_bits"]),
        w_bits=tuple(p["w_bits"]),
        o_bits=tuple(p["o_bits"]),
        input_bits=p["input_bits"],
        output_bits=p["output_bits"],
        repeats=int(p["repeats"]),
        workers=int(p["workers"]),
        seed=int(seed),
        budget=default_budget(board, int(p["max_layers"]), float(p["max_macs"])),
        build_flags=tuple(p["build_flags"]),
        require_bit_exact=bool(p["require_bit_exact"]),
        executor=str(p["executor"]),
        ray_address=p["ray_address"] or None,
    )


def _plain(block) -> dict:
    return OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block or {})


def model_layers(model_cfg):
    """The fused layer specs of a model config (a zoo or user model traced, an imported integer model read)."""
    if is_integer(model_cfg):
        return layer_specs(build_int_model(model_cfg))
    return extract_layers(build_model(model_cfg))


@contextlib.contextmanager
def entry_progress(description: str):
    """A rich bar whose total is set once the profile is planned; yields (on_plan, advance)."""

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("entries"),
        TimeElapsedColumn(),
    ) as p:
        task = p.add_task(description, total=None)

        def on_plan(n_missing: int, n_images: int) -> None:
            p.update(task, total=n_missing, description=f"{description} ({n_images} images)")

        yield on_plan, lambda n: p.advance(task, n)


def profile_for(
    block, board, layers, work: str | Path, *, seed: int = 0, title: str = "model", quiet: bool = False
):
    """Profile ``layers`` on ``board`` with the settings of a ``profile`` block; returns the ProfileResult."""

    board = load_board_config(board)
    block = {**asdict(ProfileSchema()), **_plain(block)}
    path = table_path(board, block["table_dir"])
    settings = settings_from(block, board, seed)
    if quiet:
        return profile_layers(layers, board, path, settings, workdir=work)
    with entry_progress(f"profiling {title} on {board.name}") as (on_plan, advance):
        return profile_layers(layers, board, path, settings, workdir=work, progress=advance, on_plan=on_plan)


def pair_speed(table, layers) -> dict[str, float]:
    """Sum over the model's unique shapes of each (a, w) pair's count (at o = 8 where measured), relative to
    a8w8: below 1 means that pair is faster than int8 with the current kernels."""
    df = table.df
    keys = {s.key() for s in layers if s.has_weights}
    df = df[df["layer_key"].isin(keys) & (df["w_bits"] > 0)]
    best = df.sort_values("o_bits").groupby(["layer_key", "a_bits", "w_bits"])["count"].last().reset_index()
    piv = best.pivot(index="layer_key", columns=["a_bits", "w_bits"], values="count").dropna()
    if (8, 8) not in piv.columns or piv.empty:
        return {}
    ref = piv[(8, 8)].sum()
    return {f"a{a}w{w}": float(piv[(a, w)].sum() / ref) for a, w in sorted(piv.columns)}


def run(cfg: DictConfig, run_dir: Path) -> dict:
    layers = model_layers(cfg.model)
    board = board_from(cfg).cfg  # with timer=/timing= applied
    res = profile_for(
        cfg.profile, board, layers, workdir(cfg, "profile"), seed=int(cfg.seed), title=str(cfg.model.name)
    )
    speed = pair_speed(res.table, layers)
    console = Console(stderr=True)
    console.print(
        f"[bold]{res.target.board}[/bold] ({res.target.timer}): {res.n_new} new of {res.n_entries} "
        f"entries in {res.n_images} images, {res.seconds:.1f} s; table {res.path}.parquet"
    )
    if res.unfit:
        console.print(
            f"[yellow]warning:[/yellow] {len(res.unfit)} entries of {len(res.summary()['unfit_shapes'])} layer "
            f"shape(s) cannot run on {res.target.board} even alone (input and output exceed its SRAM; these "
            "need patch-based inference): " + ", ".join(res.summary()["unfit_shapes"][:4])
        )
    if speed:
        console.print(
            "count of each (a, w) pair relative to a8w8, summed over the model's shapes: "
            + ", ".join(f"{k} {v:.2f}" for k, v in speed.items())
        )
    return {"experiment": "profile", "model": str(cfg.model.name), **res.summary(), "pair_vs_a8w8": speed}
