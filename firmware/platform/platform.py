"""tinyhil's local PlatformIO platform: no packages to download, the toolchain comes from PATH."""

from platformio.public import PlatformBase


class TinyhilPlatform(PlatformBase):
    def is_embedded(self):
        return True
