"""Build the timing plugin (``harness/timing/plugin/*.c``) with the host C compiler, cached by content.

The library lands in ``.cache/tinyhil/thtiming/<hash>/libthtiming.so`` (``TINYHIL_PLUGIN_CACHE`` overrides the
folder); the hash covers the sources and the compiler, so an edit rebuilds it and nothing else does.
``scripts/setup.sh`` builds it once ahead of time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.config.board import repo_root
from harness.errors import BuildError, MissingDependencyError
from harness.timing.model import PLUGIN_DIR, plugin_sources

FLAGS = ("-std=c99", "-D_GNU_SOURCE", "-O2", "-flto", "-Wall", "-Wextra", "-fPIC", "-shared", "-fvisibility=hidden")


def _cache_root() -> Path:
    env = os.environ.get("TINYHIL_PLUGIN_CACHE")
    return Path(env) if env else repo_root() / ".cache" / "tinyhil" / "thtiming"


def _compiler(cc: str) -> str:
    try:
        r = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        raise MissingDependencyError(f"host C compiler {cc!r} not found: apt-get install gcc") from None
    return r.stdout.splitlines()[0] if r.stdout else cc


def plugin_path(cc: str | None = None) -> Path:
    """The built plugin library (built now if this version of the sources has not been built yet)."""
    cc = cc or os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise MissingDependencyError(f"host C compiler {cc!r} not found (needed for the QEMU timing plugin): "
                                     "apt-get install -y gcc")
    srcs = plugin_sources()
    h = hashlib.sha256(_compiler(cc).encode() + " ".join(FLAGS).encode())
    for p in srcs:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    out_dir = _cache_root() / h.hexdigest()[:16]
    lib = out_dir / "libthtiming.so"
    if lib.is_file():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:  # atomic: concurrent builders never see half a file
        tmp_lib = Path(tmp) / "libthtiming.so"
        cmd = [cc, *FLAGS, f"-I{PLUGIN_DIR}", *(str(p) for p in srcs if p.suffix == ".c"), "-o", str(tmp_lib)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
        if res.returncode != 0:
            raise BuildError(f"timing plugin build failed:\n{' '.join(cmd)}\n{res.stderr}")
        os.replace(tmp_lib, lib)
    return lib


if __name__ == "__main__":  # scripts/setup.sh: build it ahead of time
    print(plugin_path())
