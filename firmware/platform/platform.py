"""tinyhil's local PlatformIO platform: no packages to download for building, the toolchain comes from PATH.

The one package it knows is the uploader for the Arduino bootloader (``tool-bossac-nordicnrf52``, Arduino's BOSSA
fork with nRF52 support): PlatformIO fetches it, when online, only for ``pio run -t upload`` on a board whose
upload protocol is ``sam-ba`` and no ``bossac`` is on PATH (a ``bossac`` on PATH is used as it is).
"""

import shutil

from platformio.public import PlatformBase


class TinyhilPlatform(PlatformBase):
    def is_embedded(self):
        return True

    def configure_default_packages(self, variables, targets):
        super().configure_default_packages(variables, targets)
        # PlatformBase marks every uploader package as needed for an upload; only sam-ba boards need bossac, and
        # only when none is installed already.
        board = variables.get("board")
        protocol = variables.get("upload_protocol")
        if not protocol and board:
            protocol = self.board_config(board).get("upload.protocol", "")
        if "tool-bossac-nordicnrf52" in self.packages and (protocol != "sam-ba" or shutil.which("bossac")):
            self.packages["tool-bossac-nordicnrf52"]["optional"] = True
