"""Flashers for real boards: pyOCD over a debug probe, or PlatformIO's own ``upload`` target.

Both run as subprocesses with a timeout and fail fast with a clear DeviceError (never wait for a probe forever:
pyOCD gets ``-W``, which makes it fail at once when no probe is attached).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.boards.resources import DebugProbe
from harness.build.pio_core import pio_environment
from harness.errors import DeviceError


def _tail(text: str, n: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


class PyOcdFlasher:
    """``pyocd load -W -t <target> [-u <probe>] <elf>``."""

    def __init__(self, probe: DebugProbe, timeout: float = 120.0):
        self.probe = probe
        self.timeout = timeout

    def command_line(self, image: Path) -> list[str]:
        exe = shutil.which("pyocd")
        cmd = [exe] if exe else [sys.executable, "-m", "pyocd"]
        cmd += ["load", "-W", "-t", self.probe.target]
        if self.probe.unique_id:
            cmd += ["-u", self.probe.unique_id]
        return [*cmd, str(image)]

    def flash(self, image: str | Path) -> None:
        image = Path(image)
        if not image.is_file():
            raise DeviceError(f"firmware image {image} does not exist")
        try:
            r = subprocess.run(
                self.command_line(image), capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(
                f"pyocd did not finish flashing {image.name} within {self.timeout:g} s"
            ) from None
        except FileNotFoundError:
            raise DeviceError("pyocd is not installed: pip install pyocd") from None
        out = (r.stdout or "") + (r.stderr or "")
        if "No connected debug probes" in out or "No target device available" in out:
            raise DeviceError(
                f"no debug probe connected for target {self.probe.target}: attach the board's ST-Link/CMSIS-DAP/"
                f"J-Link probe (pyocd list shows what is attached)"
            )
        if r.returncode != 0:
            raise DeviceError(f"pyocd failed to flash {image.name} (status {r.returncode}):\n{_tail(out)}")


class PioUploader:
    """``pio run -d <project> -e <env> -t upload``: the board's PlatformIO upload protocol does the work."""

    def __init__(self, project_dir: str | Path, env_name: str, timeout: float = 300.0):
        self.project_dir = Path(project_dir)
        self.env_name = env_name
        self.timeout = timeout

    def flash(self, image: str | Path | None = None) -> None:
        del image  # PlatformIO uploads the image it built for this project
        cmd = [sys.executable, "-m", "platformio", "run", "-d", str(self.project_dir), "-e", self.env_name,
               "-t", "upload"]  # fmt: skip
        try:
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout, env=pio_environment(), check=False
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(f"pio upload did not finish within {self.timeout:g} s") from None
        if r.returncode != 0:
            raise DeviceError(f"pio upload failed (status {r.returncode}):\n{_tail(r.stdout + r.stderr)}")
