"""The ``tinyhil`` command: ``tinyhil <command> [hydra overrides]``.

Each command is a Hydra app over ``configs/<command>.yaml`` (its ``--help`` is that file's ``hydra.help``
template: what the command does, its main options and examples). The work itself is
:func:`harness.experiments.runner.execute`. Errors a user can cause are :class:`~harness.errors.TinyHilError`
and end with one line and a non-zero exit, not a traceback; an :class:`~harness.errors.InternalError` (a bug)
keeps its traceback. Shell completion: ``eval "$(tinyhil run -sc install=bash)"``, then ``tinyhil <TAB>``
completes commands and ``tinyhil run <TAB>`` the command's config groups and keys.

This module stays light (no Hydra, torch or rich import until a command runs), so ``tinyhil --help`` and
completion answer at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

COMMANDS = {
    "run": "the closed loop and every experiment on a board (experiment=freebits|smoke|int8|quantmcu|...)",
    "bench": "benchmarks that print their figures (experiment=kernels|reliability|...)",
    "profile": "measure the latency lookup table of a model's layer shapes on a board",
    "train": "train a zoo model or your own on an offline data set",
    "sensitivity": "QuantuneV2 layer sensitivity ranking (experiment=quantune: against the n+1 ranking)",
    "boards": "list the configured boards, the attached debug probes and serial ports, and which is which",
    "calibrate": "fit the cycle model's parameters from microbenchmarks (board=..., timer=qemu-cycles)",
    "figures": "redraw the papers' figures from measured runs as PNG and PDF (results=DIR out=DIR)",
}
_COMPLETION_FLAGS = ("-sc", "--shell-completion")


def _usage() -> str:
    lines = ["usage: tinyhil <command> [hydra overrides] [-m for a multirun sweep]", "", "commands:"]
    lines += [f"  {k:<12} {v}" for k, v in COMMANDS.items()]
    lines += [
        "",
        "examples:",
        "  tinyhil run                                   # the closed loop on the default emulated board",
        "  tinyhil run experiment=smoke",
        "  tinyhil run --help                            # what a command does, its options and examples",
        "  tinyhil boards",
        "  tinyhil bench experiment=kernels",
        "  tinyhil run experiment=smoke board=qemu-mps2-an500 timer=qemu-cycles timing=stm32h743",
        "  tinyhil calibrate board=qemu-mps2-an386 timer=qemu-cycles",
        "  tinyhil figures                               # every paper figure from results/reference",
        "  tinyhil run -m experiment=quantmcu method.phi=2,3,4",
        "",
        'shell completion: eval "$(tinyhil run -sc install=bash)"',
    ]
    return "\n".join(lines)


def command_help(command: str) -> str:
    """``tinyhil <command> --help``: the command's ``hydra.help.template`` (what it does, main options,
    examples) with the options of each config group (``configs/<group>/*.yaml``)."""
    import yaml

    from harness import CONFIG_DIR

    cfg = yaml.safe_load((CONFIG_DIR / f"{command}.yaml").read_text())
    template = cfg.get("hydra", {}).get("help", {}).get("template", COMMANDS[command])
    groups = []
    for item in cfg.get("defaults", []):
        name = next(iter(item)) if isinstance(item, dict) else str(item)
        name = name.split("@")[0].removeprefix("override ").strip("/")
        if (CONFIG_DIR / name).is_dir() and not name.startswith("schema"):
            options = sorted(p.stem for p in (CONFIG_DIR / name).glob("*.yaml"))
            groups.append(f"  {name + ':':<12} {', '.join(options)}")
    return template.replace("$APP_CONFIG_GROUPS", "\n".join(groups) or "  (none)")


def _hydra_app(command: str) -> Callable[[], None]:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from harness import CONFIG_DIR
    from harness.errors import TinyHilError
    from harness.experiments.runner import console, execute, in_sweep

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=command)
    def app(cfg) -> None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            execute(cfg, run_dir)
        except TinyHilError as e:  # Hydra would print a traceback; the message is what the user needs
            console().print(f"[bold red]tinyhil {command}: error:[/bold red] {e}")
            if in_sweep():  # the other jobs go on; the sweep table marks this one and the sweep exits non-zero
                return
            sys.exit(e.exit_code)

    return app


def _complete(rest: list[str]) -> None:
    """Shell completion (Hydra's bash plugin calls ``tinyhil -sc query=bash`` with COMP_LINE set): the command
    names, or, once a command is typed, Hydra's completion of that command's config with the command word
    taken out of the line."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    typing_command = len(words) < 2 or (len(words) == 2 and not line.endswith(" "))
    if any(r.startswith("install=") or r.startswith("uninstall=") for r in rest) or not typing_command:
        command = words[1] if len(words) > 1 and words[1] in COMMANDS else "run"
        if not any(r.startswith(("install=", "uninstall=")) for r in rest):
            after = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
            os.environ["COMP_LINE"] = f"{words[0]} {after}"
            os.environ["COMP_POINT"] = str(len(os.environ["COMP_LINE"]))
        from harness.config.schema import register

        register()
        sys.argv = ["tinyhil", *_COMPLETION_FLAGS[:1], *rest]  # the install script binds the program's name
        _hydra_app(command)()
        return
    prefix = words[1] if len(words) == 2 else ""
    print(" ".join(c for c in COMMANDS if c.startswith(prefix)))


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _COMPLETION_FLAGS:
        _complete(argv[1:])
        return
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"tinyhil: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    if rest and rest[0] in ("-h", "--help"):
        print(command_help(command))
        return
    if any(r in _COMPLETION_FLAGS for r in rest):
        i = next(i for i, r in enumerate(rest) if r in _COMPLETION_FLAGS)
        _complete(rest[i + 1 :])
        return

    from harness.config.schema import register
    from harness.errors import TinyHilError
    from harness.experiments.runner import check_config, console

    register()
    sys.argv = [f"tinyhil {command}", *rest]
    try:
        check_config(command, rest)
        _hydra_app(command)()
    except TinyHilError as e:
        console().print(f"[bold red]tinyhil {command}: error:[/bold red] {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console().print("[yellow]interrupted; results written so far are kept[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
