"""Flashers for real boards: pyOCD through its Python API (harness.boards.pyocd_flasher), or PlatformIO's own
``upload`` target (pyOCD again for the NUCLEO, bossac through the Arduino bootloader for the Nano 33 BLE).

Both fail fast with a clear DeviceError: pyOCD never waits for a probe, the PlatformIO upload has a timeout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.boards.pyocd_flasher import PyOcdFlasher
from harness.build.pio_core import pio_environment
from harness.errors import DeviceError

__all__ = ["PioUploader", "PyOcdFlasher"]


def _tail(text: str, n: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


class PioUploader:
    """``pio run -d <project> -e <env> -t upload``: the board's PlatformIO upload protocol does the work."""

    def __init__(
        self, project_dir: str | Path, env_name: str, timeout: float = 300.0, upload_port: str | None = None
    ):
        self.project_dir = Path(project_dir)
        self.env_name = env_name
        self.timeout = timeout
        self.upload_port = upload_port

    def flash(self, image: str | Path | None = None) -> None:
        del image  # PlatformIO uploads the image it built for this project
        cmd = [sys.executable, "-m", "platformio", "run", "-d", str(self.project_dir), "-e", self.env_name,
               "-t", "upload"]  # fmt: skip
        if self.upload_port:
            cmd += ["--upload-port", self.upload_port]
        try:
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout, env=pio_environment(), check=False
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(f"pio upload did not finish within {self.timeout:g} s") from None
        if r.returncode != 0:
            raise DeviceError(f"pio upload failed (status {r.returncode}):\n{_tail(r.stdout + r.stderr)}")
