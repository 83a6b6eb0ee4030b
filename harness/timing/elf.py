"""What the timing plugin needs from a firmware image: the marker array and the memory layout (pyelftools)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.build.elf import ElfImage
from harness.errors import TimingError

MARKS_SYMBOL = "th_timer_marks"


@dataclass(frozen=True)
class ImageLayout:
    marks: int  # address of th_timer_marks
    n_marks: int  # its words
    stack_bottom: int
    stack_top: int
    flash_end: int  # end of what the image loads into flash (.text, .rodata, .ARM.exidx, .data's load image)
    ram_bytes: int  # .data + .bss
    min_stack: int  # the stack the linker reserves


def image_layout(elf: str | Path) -> ImageLayout:
    """Read the symbols and sections of ``elf``; TimingError if it has no cycle markers."""
    path = Path(elf)
    with ElfImage(path) as image:
        syms = {name: (s.address, s.size) for name, s in image.symbols().items()}
        ram = sum(int(sec["sh_size"]) for sec in image.elf.iter_sections()
                  if sec.name in (".data", ".bss") and sec["sh_flags"] & 0x2)  # SHF_ALLOC
        flash_end = max((int(seg["p_paddr"]) + int(seg["p_filesz"]) for seg in image.elf.iter_segments()
                         if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0), default=0)
    if MARKS_SYMBOL not in syms:
        raise TimingError(f"{path.name} has no cycle markers ({MARKS_SYMBOL}): timer=qemu-cycles needs an image built "
                          "with -DTH_CYCLE_MARKERS (the harness adds it when the board's timer is qemu-cycles)")
    for need in ("__stack_bottom", "__stack_top"):
        if need not in syms:
            raise TimingError(f"{path.name} has no {need} symbol (firmware/boards/common/sections.ld)")
    addr, size = syms[MARKS_SYMBOL]
    bottom, top = syms["__stack_bottom"][0], syms["__stack_top"][0]
    return ImageLayout(marks=addr, n_marks=size // 4, stack_bottom=bottom, stack_top=top, flash_end=flash_end,
                       ram_bytes=ram, min_stack=int(syms.get("__th_min_stack", (0, 0))[0]))
