"""Firmware builds: offline PlatformIO core, project generation, section sizes."""

from harness.build.fit import check_fit
from harness.build.project import BuildResult, MemoryEstimate, build, generate_project

__all__ = ["BuildResult", "MemoryEstimate", "build", "check_fit", "generate_project"]
