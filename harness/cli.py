"""The ``tinyhil`` command: ``tinyhil <command> [hydra overrides]``.

Each command is a Hydra app over ``configs/<command>.yaml``. The config names the function that does the work
(``entry: "module:function"``, overridden by ``experiment.entry`` when an experiment is selected); it is called
as ``function(cfg, run_dir) -> dict`` and the dict becomes ``run_dir/summary.json``. Errors a user can cause are
:class:`~harness.errors.TinyHilError` and end with their message and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

COMMANDS = {
    "run": "closed loop / experiments on a board (experiment=smoke|int8|freebits|quantmcu|...)",
    "bench": "benchmarks that print their figures (experiment=kernels|...)",
    "profile": "measure the latency lookup table of a model's layer shapes on a board",
    "train": "train a zoo model on an offline data set",
    "sensitivity": "QuantuneV2 layer sensitivity ranking",
    "boards": "list the configured boards, the attached debug probes and serial ports, and which is which",
}


def resolve_entry(spec: str) -> Callable:
    """Import ``"package.module:function"``."""
    from harness.errors import ConfigError

    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"entry must look like 'package.module:function', got {spec!r}")
    mod_name, fn_name = spec.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"entry {spec!r}: cannot import {mod_name!r} ({e})") from None
    try:
        return getattr(mod, fn_name)
    except AttributeError:
        raise ConfigError(f"entry {spec!r}: module {mod_name!r} has no {fn_name!r}") from None


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _board_config(cfg):
    """The run's BoardConfig, or None for commands without a board."""
    from omegaconf import DictConfig, OmegaConf

    node = OmegaConf.select(cfg, "board")
    if not isinstance(node, DictConfig) or "driver" not in node:
        return None
    from harness.boards.config import load_board_config

    return load_board_config(OmegaConf.to_container(node, resolve=True))


def check_board(cfg, build_only: bool):
    """Before any long work: the board's firmware can be built, and (unless build_only) a real board's probe and
    port are attached. Resolved devices are written back into ``cfg.board.driver``. Returns the BoardConfig."""
    board = _board_config(cfg)
    if board is None:
        return None
    if not board.buildable:
        from harness.build.project import _board

        _board(board)  # raises the ConfigError naming the missing board support
    if not build_only and not board.emulated:
        from harness.boards.discovery import preflight

        for key, value in preflight(board).items():
            cfg.board.driver[key] = value
        board = _board_config(cfg)
    return board


def execute(cfg, run_dir: Path) -> dict:
    """Run the configured entry and write its summary. Shared by every command.

    ``build_only=true``: the entry runs until the firmware is built and checked for fit, then stops before flashing
    (harness.boards.build_only); the summary says ``built``, ``flash_used``, ``sram_used``, ``elf_sha256``. Cycle
    counts get ``clock_hz`` and millisecond values beside them (harness.measure.units)."""
    from omegaconf import OmegaConf

    from harness.boards import build_only as build_only_mode
    from harness.measure.units import add_milliseconds
    from harness.results.io import atomic_write_text, write_summary

    entry = OmegaConf.select(cfg, "experiment.entry") or OmegaConf.select(cfg, "entry")
    fn = resolve_entry(entry)
    build_only = bool(OmegaConf.select(cfg, "build_only", default=False))
    board = check_board(cfg, build_only)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    t0 = time.perf_counter()
    with build_only_mode.mode(build_only):
        try:
            summary = fn(cfg, run_dir) or {}
            if build_only:
                summary.setdefault("built", False)  # the command never reached a firmware build
        except build_only_mode.BuiltOnly as done:
            summary = done.summary()
            name = OmegaConf.select(cfg, "experiment.name")
            if name:
                summary["experiment"] = name
            _console().print(
                f"[green]built[/green] {done.board}: flash {summary['flash_used']} B, SRAM {summary['sram_used']} B"
                f" (build_only: nothing flashed)"
            )
    if board is not None:
        summary = add_milliseconds(summary, str(summary.get("unit", board.timer.unit)), board.timer.hz)
    summary.setdefault("run", run_dir.name)
    summary.setdefault("command_seconds", round(time.perf_counter() - t0, 3))
    write_summary(run_dir, summary)
    _console().print(f"[green]results:[/green] {run_dir / 'summary.json'}")
    return summary


def _hydra_app(command: str) -> Callable[[], None]:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from harness import CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=command)
    def app(cfg) -> None:
        from harness.errors import TinyHilError

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            execute(cfg, run_dir)
        except TinyHilError as e:  # Hydra would print a traceback; the message is what the user needs
            _console().print(f"[bold red]tinyhil {command}: error:[/bold red] {e}")
            sys.exit(e.exit_code)

    return app


def _usage() -> str:
    lines = ["usage: tinyhil <command> [hydra overrides] [-m for a multirun sweep]", "", "commands:"]
    lines += [f"  {k:<12} {v}" for k, v in COMMANDS.items()]
    lines += ["", "examples:", "  tinyhil run experiment=smoke", "  tinyhil run experiment=freebits board=qemu-netduinoplus2",
              "  tinyhil boards", "  tinyhil run experiment=smoke board=nucleo-h743zi build_only=true",
              "  tinyhil bench experiment=kernels", "  tinyhil run -m experiment=quantmcu method.phi=2,3,4"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"tinyhil: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)

    from harness.errors import TinyHilError

    sys.argv = [f"tinyhil {command}", *rest]
    try:
        _hydra_app(command)()
    except TinyHilError as e:
        _console().print(f"[bold red]tinyhil {command}: error:[/bold red] {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _console().print("[yellow]interrupted; results written so far are kept[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
