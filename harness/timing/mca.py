"""Cross-check of the cycle model against llvm-mca on the firmware's hot inner loops.

The plugin can dump every translation block it ran (``hot=FILE``: address, end, instructions, executions, static
cycles, branch kind, bytes). A block whose last instruction branches back to its own start is a one-block loop; the
hottest ones are the kernels' inner loops. For each, the model's cycles per iteration (the block's static cost,
plus the taken-branch refill on the Cortex-M4) are compared with llvm-mca's steady state for the same instructions
(``-mtriple=thumbv7em-none-eabi -mcpu=cortex-m4|cortex-m7``, total cycles / iterations). llvm-mca models neither
branch refills nor memory, and its M4 model has no load pairing and a MAC latency of 2: the comparison is a
cross-check, not the source of truth.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import MissingDependencyError

BRANCH_KINDS = {0: "none", 1: "direct", 2: "cond", 3: "indirect", 4: "cond_indirect"}
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*(\S+)\s*(.*)$")


@dataclass(frozen=True)
class Block:
    vaddr: int
    end: int
    n: int
    execs: int
    cost: float  # static cycles when entered from elsewhere
    branch: str
    loop_cost: float  # static cycles of an iteration right after itself (one-block loops)


def read_hot(path: str | Path) -> list[Block]:
    """The plugin's block dump (``hot=FILE``: address, end, instructions, executions, static cycles, branch kind,
    loop-iteration cycles, bytes), merged by address (a block may be translated more than once)."""
    merged: dict[tuple[int, int], Block] = {}
    for line in Path(path).read_text().splitlines():
        p = line.split()
        if len(p) < 7:
            continue
        b = Block(int(p[0], 16), int(p[1], 16), int(p[2]), int(p[3]), float(p[4]), BRANCH_KINDS.get(int(p[5]), "?"),
                  float(p[6]))
        key = (b.vaddr, b.end)
        if key in merged:
            old = merged[key]
            b = Block(b.vaddr, b.end, b.n, old.execs + b.execs, b.cost, b.branch, b.loop_cost)
        merged[key] = b
    return sorted(merged.values(), key=lambda b: -b.execs * b.loop_cost)


def _objdump() -> str:
    for name in ("llvm-objdump-14", "llvm-objdump"):
        if shutil.which(name):
            return name
    raise MissingDependencyError("llvm-objdump not found: apt-get install -y llvm")


def _mca() -> str:
    for name in ("llvm-mca-14", "llvm-mca"):
        if shutil.which(name):
            return name
    raise MissingDependencyError("llvm-mca not found: apt-get install -y llvm")


@dataclass
class Loop:
    function: str
    source: str  # the object file the function comes from (e.g. packed_mm)
    vaddr: int
    n: int
    execs: int
    model_static: float  # static cycles of one steady-state iteration, without the back-edge refill
    asm: list[str]


def function_sources(map_file: str | Path) -> list[tuple[int, int, str, str]]:
    """(address, size, function, object stem) of every ``.text.<function>`` input section in a GNU ld map."""
    text = Path(map_file).read_text()
    pat = re.compile(r"^ \.text\.(\S+)\s*\n?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\S*?\(?([\w.-]+?)(?:\.c)?\.o\)?$",
                     re.MULTILINE)
    return [(int(m.group(2), 16), int(m.group(3), 16), m.group(1), m.group(4)) for m in pat.finditer(text)
            if int(m.group(2), 16) != 0]


def _locate(table: list[tuple[int, int, str, str]], addr: int) -> tuple[str, str]:
    for a, n, func, obj in table:
        if a <= addr < a + n:
            return func, obj
    return "?", "?"


def disassemble(elf: str | Path, start: int, end: int, cpu: str) -> tuple[str, list[tuple[int, str, str]]]:
    """(function symbol, [(address, mnemonic, operands)]) of [start, end) in ``elf``."""
    out = subprocess.run([_objdump(), "-d", "--triple=thumbv7em-none-eabi", f"--mcpu={cpu}",
                          f"--start-address={start:#x}", f"--stop-address={end:#x}", str(elf)],
                         capture_output=True, text=True, check=False).stdout
    func, insns = "?", []
    for ln in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:", ln)
        if m and func == "?":
            func = m.group(1).split("+")[0]
        m = _LINE.match(ln)
        if m:
            ops = re.split(r"\s*[@;]", m.group(4))[0].strip()
            insns.append((int(m.group(1), 16), m.group(3), ops))
    return func, insns


def loops(blocks: Iterable[Block], elf: str | Path, cpu: str, *, map_file: str | Path | None = None,
          objects: Iterable[str] | None = None, top: int = 12, min_share: float = 0.002) -> list[Loop]:
    """The hottest one-block loops (conditional back-branches to the block's own start); with ``map_file`` and
    ``objects`` only those in functions from these object files (e.g. the kernel sources)."""
    blocks = list(blocks)
    total = sum(b.execs * b.loop_cost for b in blocks) or 1.0
    table = function_sources(map_file) if map_file is not None else []
    keep = set(objects) if objects is not None else None
    found: list[Loop] = []
    for b in blocks:
        if b.branch != "cond" or b.execs * b.loop_cost / total < min_share:
            continue
        func, obj = _locate(table, b.vaddr)
        if keep is not None and obj not in keep:
            continue
        name, insns = disassemble(elf, b.vaddr, b.end, cpu)
        if not insns or len(insns) != b.n:
            continue
        _, mnem, ops = insns[-1]
        t = re.search(r"0x([0-9a-f]+)", ops)
        if not (mnem.startswith("b") and mnem not in ("bl", "blx", "bx") and t and int(t.group(1), 16) == b.vaddr):
            continue
        body = [f"{m} {o}".strip() for _, m, o in insns[:-1]] + [f"{mnem} loop"]
        found.append(Loop(func if func != "?" else name, obj, b.vaddr, b.n, b.execs, b.loop_cost, body))
        if len(found) >= top:
            break
    return found


_INVERSE = {"eq": "ne", "ne": "eq", "cs": "cc", "cc": "cs", "hs": "lo", "lo": "hs", "mi": "pl", "pl": "mi",
            "vs": "vc", "vc": "vs", "hi": "ls", "ls": "hi", "ge": "lt", "lt": "ge", "gt": "le", "le": "gt"}


def without_it_blocks(asm: list[str]) -> list[str]:
    """``asm`` with each IT instruction left out and the instructions it predicates made unconditional.

    llvm-mca 14 cannot schedule an IT instruction (its Cortex-M7 model rejects it). A predicated instruction
    issues whether or not its condition holds, so its unconditional form costs the same; the IT's own issue slot
    is then missing from llvm-mca's figure (at most one cycle per block, and none where the core folds it)."""
    out: list[str] = []
    pending: list[str] = []
    for a in asm:
        m = re.match(r"^it([te]{0,3})\s+(\w\w)\s*$", a)
        if m:
            cond = m.group(2)
            pending = [cond] + [cond if c == "t" else _INVERSE.get(cond, cond) for c in m.group(1)]
            continue
        if pending:
            cond = pending.pop(0)
            mnem, _, rest = a.partition(" ")
            base, dot, width = mnem.partition(".")
            if base.endswith(cond):
                base = base[: -len(cond)]
            a = f"{base}{dot}{width} {rest}".strip()
        out.append(a)
    return out


def mca_cycles_per_iteration(asm: list[str], cpu: str, iterations: int = 400) -> float:
    """llvm-mca's steady state: total cycles / iterations of ``asm`` (a loop body ending in its back-branch)."""
    text = "loop:\n" + "\n".join(f"    {a}" for a in without_it_blocks(asm)) + "\n"
    res = subprocess.run([_mca(), "-mtriple=thumbv7em-none-eabi", f"-mcpu={cpu}", f"-iterations={iterations}"],
                         input=text, capture_output=True, text=True, check=False)
    m = re.search(r"Total Cycles:\s+(\d+)", res.stdout)
    if res.returncode != 0 or not m:
        raise RuntimeError(f"llvm-mca failed on\n{text}\n{res.stderr.strip()[:400]}")
    return int(m.group(1)) / iterations
