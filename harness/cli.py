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

from harness.errors import ConfigError, ResultError, TinyHilError

COMMANDS = {
    "run": "closed loop / experiments on a board (experiment=smoke|int8|freebits|quantmcu|...)",
    "bench": "benchmarks that print their figures (experiment=kernels|reliability)",
    "profile": "measure the latency lookup table of a model's layer shapes on a board",
    "train": "train a zoo model on an offline data set",
    "sensitivity": "QuantuneV2 layer sensitivity ranking",
}


def resolve_entry(spec: str) -> Callable:
    """Import ``"package.module:function"``."""
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

    return Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the terminal width


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
    check_results(summary)
    return summary


def check_results(summary: dict) -> None:
    """ResultError (exit 3) when a measured result is wrong: the summary is written first, then the command
    fails, so a wrong result never exits 0 and nothing measured is lost."""
    if summary.get("bit_exact") is False:
        why = summary.get("mismatches") or summary.get("mismatched_layers") or summary.get("mismatched") or []
        detail = "; ".join(str(w) for w in why[:3]) if isinstance(why, list) else str(why)
        raise ResultError(f"results are not bit-exact against the integer reference: {detail or 'see summary.json'}")


def _one_line(exc: BaseException) -> str:
    """A Hydra/OmegaConf composition error as one line naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    err: BaseException | None = exc
    while err is not None:
        if isinstance(err, OmegaConfBaseException) and getattr(err, "full_key", None):
            msg = str(getattr(err, "msg", "") or str(err)).splitlines()[0]
            return f"{err.full_key}: {msg}"
        err = err.__cause__ or err.__context__
    text = " ".join(str(exc).split())
    return text.split(" Config search path:")[0]


def check_config(command: str, overrides: list[str]) -> None:
    """Compose the command's config once before running it, so a bad key or value is one line (exit 2)
    before any work starts. Sweeps (-m) and Hydra's own flags are left to Hydra."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from harness.config.compose import compose_config
    if any(o.startswith("-") for o in overrides):
        return
    try:
        compose_config(command, overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad configuration: {_one_line(e)}") from None


def _hydra_app(command: str) -> Callable[[], None]:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from harness import CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=command)
    def app(cfg) -> None:
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

    from harness.config.schema import register
    register()
    sys.argv = [f"tinyhil {command}", *rest]
    try:
        check_config(command, rest)
        _hydra_app(command)()
    except TinyHilError as e:
        _console().print(f"[bold red]tinyhil {command}: error:[/bold red] {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _console().print("[yellow]interrupted; results written so far are kept[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
