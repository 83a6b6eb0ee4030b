"""tinyhil: hardware-in-the-loop benchmarking of mixed-precision, patch-based quantized CNNs on MCUs.

The pipeline reads in the folder names: ``models``/``quant`` generate a quantized model, ``search`` chooses
bit-widths, ``codegen`` emits C, ``build`` compiles it, ``boards`` flash it, ``transport``/``measure`` collect the
per-layer counts, and ``loop`` refines the configuration against the measured latency table.
"""

from pathlib import Path

__version__ = "0.1.0"

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = REPO_ROOT / "firmware"
CONFIG_DIR = REPO_ROOT / "configs"
