"""The front door: every command's --help says what it does with its options and examples; completion works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import COMMANDS

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def tinyhil(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "tinyhil"), *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                          check=False)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_begins_with_what_the_command_does_and_gives_examples(command):
    p = tinyhil(command, "--help")
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.startswith(f"tinyhil {command}: ") and "powered by Hydra" not in p.stdout
    assert "Examples:" in p.stdout and f"  tinyhil {command}" in p.stdout
    assert "schema/" not in p.stdout  # the schemas are not options a user picks
    assert len(p.stdout.splitlines()) < 45


def test_run_help_lists_the_options_of_each_config_group():
    out = tinyhil("run", "--help").stdout
    boards = next(ln for ln in out.splitlines() if ln.strip().startswith("board:"))
    assert "qemu-mps2-an386" in boards and "nucleo-h743zi" in boards


def _complete_in_bash(line: str) -> list[str]:
    """What bash offers after ``line`` once the installed completion is in place."""
    script = f"""
set -e
export PATH="{BIN}:$PATH"
eval "$(tinyhil run -sc install=bash)"
COMP_LINE={line!r}
COMP_POINT=${{#COMP_LINE}}
words=($COMP_LINE)
if [[ "$COMP_LINE" == *" " ]]; then COMP_CWORD=${{#words[@]}}; else COMP_CWORD=$(( ${{#words[@]}} - 1 )); fi
hydra_bash_completion
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert p.returncode == 0, p.stderr
    return [ln for ln in p.stdout.splitlines() if ln]


def test_completion_completes_commands_then_config_groups_and_options_in_bash():
    assert _complete_in_bash("tinyhil pro") == ["profile"]
    assert set(_complete_in_bash("tinyhil run board=qemu-mps2-an3")) == {"board=qemu-mps2-an386"}
    assert "experiment=kernels" in _complete_in_bash("tinyhil bench experiment=k")
