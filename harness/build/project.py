"""Firmware projects (microTVM's project API shape): generate a PlatformIO project for a board and a model, build it.

``generate_project`` writes ``platformio.ini`` (the local platform in ``firmware/platform`` via ``symlink://``) and
copies the model's generated sources into ``src/``; ``build`` runs PlatformIO offline and returns the ELF with its
section sizes. A model that cannot fit is rejected twice: before building, from the caller's size estimate, and
after linking (the linker script overflows, or the real sections exceed the board).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from harness.build.pio_core import pio_environment
from harness.build.sizes import SectionSizes, linker_overflows, min_stack_bytes, section_sizes
from harness.config.board import BoardConfig, known_boards, load_board_config, repo_root
from harness.errors import BuildError, ConfigError, DoesNotFitError
from harness.memory.estimate import MemoryEstimate

#: Static RAM of the runtime itself (per-layer tick/CRC tables, parser state), measured at TH_MAX_LAYERS=256.
RUNTIME_SRAM_BYTES = 4 * 1024
#: Flash of the runtime, startup and board code without kernels (measured: ~12.5 KB).
RUNTIME_FLASH_BYTES = 16 * 1024
_SOURCE_SUFFIXES = (".c", ".h", ".inc")
#: Images kept in the content-hash cache.
CACHE_ENTRIES = 256


@dataclass(frozen=True)
class BuildResult:
    board: str
    elf: Path
    map: Path
    text: int
    data: int
    bss: int
    stack: int
    flash_used: int
    sram_used: int
    flash_size: int
    sram_size: int
    seconds: float
    cached: bool = False
    key: str = ""  # the content key of the build's inputs (the cache entry's name)
    elf_sha256: str = ""  # of the image in ``elf``

    def to_dict(self) -> dict:
        d = asdict(self)
        d["elf"], d["map"] = str(self.elf), str(self.map)
        return d


def firmware_root() -> Path:
    return repo_root() / "firmware"


def require_buildable(board: str | BoardConfig | object) -> BoardConfig:
    cfg = load_board_config(board)  # type: ignore[arg-type]
    if not cfg.buildable:
        buildable = [b for b in known_boards() if load_board_config(b).buildable]
        raise ConfigError(
            f"board '{cfg.name}' has no firmware support yet (needs {cfg.firmware_dir} and "
            f"firmware/platform/boards/{cfg.platformio_board}.json); buildable boards: {', '.join(buildable)}"
        )
    return cfg


def check_fit(board: str | BoardConfig, estimate: MemoryEstimate) -> None:
    """DoesNotFitError if ``estimate`` cannot fit the board (before spending time on a build)."""
    cfg = load_board_config(board)
    stack = (
        min_stack_bytes(repo_root() / cfg.linker_script) if (repo_root() / cfg.linker_script).is_file() else 0
    )
    sram_need = estimate.arena + estimate.scratch + RUNTIME_SRAM_BYTES + stack
    if sram_need > cfg.sram.size:
        raise DoesNotFitError(
            f"model does not fit {cfg.name}: SRAM needs about {sram_need} B (arena {estimate.arena} + scratch "
            f"{estimate.scratch} + runtime {RUNTIME_SRAM_BYTES} + stack {stack}) but the board has "
            f"{cfg.sram.size} B"
        )
    flash_need = estimate.weights + RUNTIME_FLASH_BYTES
    if flash_need > cfg.flash.size:
        raise DoesNotFitError(
            f"model does not fit {cfg.name}: flash needs about {flash_need} B (weights {estimate.weights} + "
            f"runtime {RUNTIME_FLASH_BYTES}) but the board has {cfg.flash.size} B"
        )


def _collect_sources(model_sources: Path | str | Sequence[Path | str]) -> list[Path]:
    items = [model_sources] if isinstance(model_sources, (str, Path)) else list(model_sources)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix in _SOURCE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError(f"model source {p} does not exist")
    names = [f.name for f in files]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"model sources have clashing file names: {sorted(dup)}")
    if not any(f.suffix == ".c" for f in files):
        raise ConfigError(f"no C source among the model sources {[str(i) for i in items]}")
    return files


def _write_if_changed(path: Path, data: bytes) -> None:
    # Unchanged files keep their mtime, so PlatformIO rebuilds only what changed.
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)


#: Firmware build flags a board's timer needs: an image whose cycles the timing plugin counts stores its layer
#: markers (firmware/runtime/include/th_board.h, TH_MARK; see harness.timing).
TIMER_BUILD_FLAGS: dict[str, tuple[str, ...]] = {"qemu-cycles": ("-DTH_CYCLE_MARKERS",)}


def timer_build_flags(board: BoardConfig) -> tuple[str, ...]:
    """Extra firmware build flags the board's timer needs."""
    return TIMER_BUILD_FLAGS.get(board.timer.source, ())


def project_ini(board: BoardConfig, build_flags: Iterable[str] = ()) -> str:
    fw = firmware_root()
    flags = "\n    ".join([*build_flags, *timer_build_flags(board)])
    return (
        "; Generated by tinyhil (harness/build/project.py). Build by hand with:\n"
        ";   PLATFORMIO_CORE_DIR=<repo>/.pio-core pio run -d <this folder>\n"
        "[platformio]\n"
        f"default_envs = {board.name}\n\n"
        f"[env:{board.name}]\n"
        f"platform = symlink://{fw / 'platform'}\n"
        f"board = {board.platformio_board}\n"
        f"custom_tinyhil_firmware_dir = {fw}\n" + (f"build_flags =\n    {flags}\n" if flags else "")
    )


def generate_project(
    board_cfg: str | BoardConfig | object,
    model_sources: Path | str | Sequence[Path | str],
    out_dir: str | Path,
    *,
    estimate: MemoryEstimate | None = None,
    build_flags: Iterable[str] = (),
) -> Path:
    """Write a PlatformIO project for ``board_cfg`` with ``model_sources`` (files, or a folder of .c/.h) in ``src/``.

    ``estimate`` (arena + scratch + weights) is checked against the board first (DoesNotFitError). Re-generating
    into the same folder rewrites only what changed and removes stale sources, so rebuilds stay incremental.
    """
    board = require_buildable(board_cfg)
    if estimate is not None:
        check_fit(board, estimate)
    files = _collect_sources(model_sources)
    out = Path(out_dir)
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    _write_if_changed(out / "platformio.ini", project_ini(board, build_flags).encode())
    if estimate is not None:
        _write_if_changed(out / "tinyhil-estimate.json", json.dumps(asdict(estimate)).encode())
    keep = set()
    for f in files:
        _write_if_changed(src / f.name, f.read_bytes())
        keep.add(f.name)
    for stale in src.iterdir():
        if stale.is_file() and stale.name not in keep:
            stale.unlink()
    return out


@lru_cache(maxsize=1)
def _compiler_id() -> str:
    try:
        r = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True, check=False)
        return r.stdout.splitlines()[0] if r.stdout else "unknown"
    except FileNotFoundError:
        return "missing"


def _tree(root: Path) -> list[Path]:
    """Every file under ``root`` (subfolders included), sorted; Python byte code is not a build input."""
    if not root.is_dir():
        return []
    return sorted(f for f in root.rglob("*") if f.is_file() and "__pycache__" not in f.parts)


def build_inputs(project_dir: Path, board: BoardConfig) -> list[tuple[str, Path]]:
    """Every file the build of ``project_dir`` reads, named as the key names them: the runtime and kernels, the
    shared and the board's own board support (linker script included), the local PlatformIO platform (build
    script, board manifests), the project's sources and its ``platformio.ini`` (flags)."""
    fw = firmware_root()
    named = [(f"firmware/{f.relative_to(fw)}", f) for root in (
        fw / "runtime", fw / "boards" / "common", board.firmware_dir, fw / "platform") for f in _tree(root)]
    named += [(f"project/{f.relative_to(project_dir)}", f) for f in _tree(project_dir / "src")]
    named.append(("project/platformio.ini", project_dir / "platformio.ini"))
    return named


def _content_key(project_dir: Path, board: BoardConfig) -> str:
    """Hash of every input of the build (:func:`build_inputs`), the compiler and PlatformIO's version.

    Read from the bytes on disk at the moment of the call; :func:`build` computes it before and after compiling
    and stores the image only when both agree, so a key always names the bytes that were compiled."""
    h = hashlib.sha256()
    h.update(_compiler_id().encode() + b"\0" + _pio_version().encode() + b"\0")
    for name, f in build_inputs(project_dir, board):
        try:
            data = f.read_bytes()
        except FileNotFoundError:  # removed while we looked: the key differs from the next look anyway
            data = b"\x00<missing>"
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()[:32]


@lru_cache(maxsize=1)
def _pio_version() -> str:
    try:
        return importlib.metadata.version("platformio")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: Environment variable naming another build cache folder (a benchmark's cold cache; a cluster's node-local disk).
CACHE_ENV = "TINYHIL_BUILD_CACHE"


def default_cache_dir() -> Path:
    """``$TINYHIL_BUILD_CACHE``, else ``<repo>/.cache/tinyhil/builds``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else repo_root() / ".cache" / "tinyhil" / "builds"


def _error_lines(output: str) -> str:
    pat = re.compile(
        r"error|undefined reference|overflowed|will not fit|multiple definition|no such file", re.IGNORECASE
    )
    noise = re.compile(r"^\*\*\* \[|^=+|\[FAILED\]|^Environment|^-+\s|^\w[\w-]*\s+FAILED")
    lines = [ln for ln in output.splitlines() if pat.search(ln) and not noise.search(ln)]
    if not lines:
        lines = output.strip().splitlines()[-25:]
    return "\n".join(lines[:40])


def _does_not_fit(
    board: BoardConfig, overflows: dict[str, int], estimate: MemoryEstimate | None
) -> DoesNotFitError:
    parts = []
    for region, n in sorted(overflows.items()):
        size = board.sram.size if region == "RAM" else board.flash.size
        what = "SRAM" if region == "RAM" else "flash"
        parts.append(f"{what} overflowed by {n} B (needs {size + n} B, the board has {size} B)")
    est = (
        f"; estimate: arena {estimate.arena} B, scratch {estimate.scratch} B, weights {estimate.weights} B"
        if estimate
        else ""
    )
    return DoesNotFitError(f"model does not fit {board.name}: {'; '.join(parts)}{est}")


def build(
    project_dir: str | Path,
    board: str | BoardConfig | object,
    *,
    estimate: MemoryEstimate | None = None,
    cache_dir: str | Path | None | bool = None,
    timeout: float = 600.0,
) -> BuildResult:
    """Build the project with PlatformIO (offline) and return the image and its sizes.

    BuildError carries the compiler's error lines; DoesNotFitError names the sizes. ``cache_dir``: where images are
    cached by content (default ``<repo>/.cache/tinyhil/builds``; ``False`` disables the cache).

    The cache is content-addressed and safe to share between concurrent runs: the key is the hash of every input
    the build reads (:func:`build_inputs`), computed before and again after compiling (an image is stored only
    when nothing changed meanwhile: the key names the bytes that were compiled); an entry is published with an
    atomic rename and carries the SHA-256 of its ELF, which is checked on every reuse (a damaged entry is dropped
    and rebuilt, never used).
    """
    cfg = require_buildable(board)
    project = Path(project_dir).resolve()
    if not (project / "platformio.ini").is_file():
        raise BuildError(
            f"{project} is not a generated project (no platformio.ini): call generate_project first"
        )
    if estimate is not None:
        check_fit(cfg, estimate)
    out_dir = project / ".pio" / "build" / cfg.name
    elf, mapf = out_dir / "firmware.elf", out_dir / "firmware.map"
    t0 = time.monotonic()
    root: Path | None = None
    if cache_dir is not False:
        root = Path(cache_dir) if isinstance(cache_dir, (str, Path)) else default_cache_dir()

    for _attempt in range(3):
        key = _content_key(project, cfg)
        if root is not None:
            hit = _reuse(root / key, elf, mapf)
            if hit is not None:
                return _result(cfg, elf, mapf, hit, time.monotonic() - t0, cached=True, key=key)
        sizes = _compile(project, cfg, elf, estimate, timeout)
        if _content_key(project, cfg) != key:
            continue  # an input changed while compiling: build again from what is there now
        digest = sha256_file(elf)
        if root is not None:
            _store(root / key, elf, mapf, sizes, digest)
        return _result(cfg, elf, mapf, sizes, time.monotonic() - t0, cached=False, key=key, sha=digest)
    raise BuildError(
        f"the firmware sources of {project} kept changing while they were being compiled (three tries); "
        "stop editing firmware/ or the project during the build and run again"
    )


def _compile(project: Path, cfg: BoardConfig, elf: Path, estimate: MemoryEstimate | None,
             timeout: float) -> SectionSizes:
    """Run PlatformIO on the project; the image's section sizes, checked against the board."""
    cmd = [sys.executable, "-m", "platformio", "run", "-d", str(project), "-e", cfg.name]
    try:
        r = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=pio_environment(), check=False
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"firmware build for {cfg.name} did not finish within {timeout:g} s") from None
    output = r.stdout + r.stderr
    if r.returncode != 0 or not elf.is_file():
        overflows = linker_overflows(output)
        if overflows:
            raise _does_not_fit(cfg, overflows, estimate)
        raise BuildError(f"firmware build for {cfg.name} failed:\n{_error_lines(output)}")
    sizes = section_sizes(elf)
    if sizes.sram_used > cfg.sram.size or sizes.flash_used > cfg.flash.size:
        raise DoesNotFitError(
            f"model does not fit {cfg.name}: image uses {sizes.flash_used} B flash (of {cfg.flash.size}) and "
            f"{sizes.sram_used} B SRAM (of {cfg.sram.size}: data {sizes.data} + bss {sizes.bss} + stack "
            f"{sizes.stack})"
        )
    return sizes


def _reuse(entry: Path, elf: Path, mapf: Path) -> SectionSizes | None:
    """Copy a cached image into the project's build folder, verified against its stored SHA-256; None on a miss.

    A damaged or incomplete entry (no checksum, wrong checksum) is removed so that the next store replaces it; a
    concurrent prune that removes the entry while we read it is a miss."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        sizes = SectionSizes(**json.loads((entry / "sizes.json").read_text()))
        elf.parent.mkdir(parents=True, exist_ok=True)
        tmp = elf.with_name(f".firmware.elf.{os.getpid()}.{time.monotonic_ns()}")
        shutil.copyfile(entry / "firmware.elf", tmp)
        if sha256_file(tmp) != meta["elf_sha256"]:
            tmp.unlink(missing_ok=True)
            _discard(entry)
            return None
        os.replace(tmp, elf)
        if (entry / "firmware.map").is_file():
            shutil.copyfile(entry / "firmware.map", mapf)
        os.utime(entry)  # recently used: pruned last
        return sizes
    except FileNotFoundError:
        if entry.is_dir() and not (entry / "meta.json").is_file():
            _discard(entry)  # an entry of an older layout (no checksum): rebuild and replace it
        return None
    except (OSError, ValueError, KeyError, TypeError):
        _discard(entry)
        return None


def cached_sha256(cache_entry: Path) -> str:
    """The ELF checksum stored with a cache entry (``meta.json``)."""
    return str(json.loads((cache_entry / "meta.json").read_text())["elf_sha256"])


def _discard(entry: Path) -> None:
    """Remove a cache entry: renamed away first (atomic), so a reader never sees it half-deleted."""
    gone = entry.with_name(f"{entry.name}.tmp-gone{os.getpid()}-{time.monotonic_ns()}")
    try:
        entry.rename(gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def _store(cache: Path, elf: Path, mapf: Path, sizes: SectionSizes, digest: str) -> None:
    # Write into a temporary sibling and rename, so a concurrent reader never sees half an entry.
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}-{time.monotonic_ns()}")
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(elf, tmp / "firmware.elf")
    if mapf.is_file():
        shutil.copyfile(mapf, tmp / "firmware.map")
    (tmp / "sizes.json").write_text(json.dumps(asdict(sizes)))
    if sha256_file(tmp / "firmware.elf") != digest:  # the copy is not the image that was built
        shutil.rmtree(tmp, ignore_errors=True)
        return
    meta = {"key": cache.name, "elf_sha256": digest, "compiler": _compiler_id(), "platformio": _pio_version()}
    (tmp / "meta.json").write_text(json.dumps(meta))  # written last: its presence marks a complete entry
    try:
        tmp.rename(cache)
    except OSError:  # another process stored the same entry first (same key: the same inputs)
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(cache.parent, keep=CACHE_ENTRIES)


def _prune(root: Path, keep: int) -> None:
    """Keep the ``keep`` most recently stored or used images (a sweep builds one per configuration)."""
    entries = []
    for p in root.iterdir():
        try:
            if p.is_dir() and ".tmp" not in p.name:
                entries.append((p.stat().st_mtime, p))
        except OSError:  # removed by a concurrent prune
            continue
    entries.sort(key=lambda e: e[0], reverse=True)
    for _, old in entries[keep:]:
        _discard(old)


def _result(
    cfg: BoardConfig, elf: Path, mapf: Path, s: SectionSizes, seconds: float, cached: bool, key: str = "",
    sha: str = "",
) -> BuildResult:
    return BuildResult(
        board=cfg.name,
        elf=elf,
        map=mapf,
        text=s.text,
        data=s.data,
        bss=s.bss,
        stack=s.stack,
        flash_used=s.flash_used,
        sram_used=s.sram_used,
        flash_size=cfg.flash.size,
        sram_size=cfg.sram.size,
        seconds=seconds,
        cached=cached,
        key=key,
        elf_sha256=sha or sha256_file(elf),
    )
