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
    "calibrate": "fit the cycle model's parameters from microbenchmarks (board=..., timer=qemu-cycles)",
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


def execute(cfg, run_dir: Path) -> dict:
    """Run the configured entry and write its summary. Shared by every command."""
    from omegaconf import OmegaConf

    from harness.results.io import atomic_write_text, write_summary

    entry = OmegaConf.select(cfg, "experiment.entry") or OmegaConf.select(cfg, "entry")
    fn = resolve_entry(entry)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    t0 = time.perf_counter()
    summary = fn(cfg, run_dir) or {}
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
              "  tinyhil bench experiment=kernels", "  tinyhil run -m experiment=quantmcu method.phi=2,3,4",
              "  tinyhil run experiment=smoke board=qemu-mps2-an500 timer=qemu-cycles timing=stm32h743",
              "  tinyhil calibrate board=qemu-mps2-an386 timer=qemu-cycles"]
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
