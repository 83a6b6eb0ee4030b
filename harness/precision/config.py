"""The precision configuration every search method and the refiner exchange.

A configuration maps a layer name (the qualified name of a Conv2d/Linear module in the float model) to
``(a_bits, w_bits)``: the bit-width of that layer's *input* activation and of its weights, each in {2, 4, 8}.
Output activations are written at the precision the consuming layer asks for (see ``harness.ir.model``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.errors import ConfigError
from harness.results.io import atomic_write_text

ALLOWED_BITS = (2, 4, 8)


def _check_bits(name: str, a: int, w: int) -> tuple[int, int]:
    a, w = int(a), int(w)
    if a not in ALLOWED_BITS or w not in ALLOWED_BITS:
        raise ConfigError(f"layer {name!r}: bit-widths ({a}, {w}) not in {ALLOWED_BITS}")
    return a, w


@dataclass
class PrecisionConfig(Mapping[str, tuple[int, int]]):
    """Per-layer ``(a_bits, w_bits)``; ``patches`` optionally overrides activation bits per patch branch."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    # patch index -> layer name -> a_bits, for patch-based (QuantMCU) configurations
    patches: dict[int, dict[str, int]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = {k: _check_bits(k, *v) for k, v in self.layers.items()}
        for p, over in self.patches.items():
            for k, a in over.items():
                _check_bits(f"{k}@patch{p}", a, 8)

    # Mapping interface
    def __getitem__(self, name: str) -> tuple[int, int]:
        return self.layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @classmethod
    def uniform(cls, names: list[str], a_bits: int = 8, w_bits: int = 8, **meta) -> PrecisionConfig:
        return cls({n: (a_bits, w_bits) for n in names}, meta={"method": f"uniform-a{a_bits}w{w_bits}", **meta})

    def with_layer(self, name: str, a_bits: int, w_bits: int) -> PrecisionConfig:
        layers = dict(self.layers)
        layers[name] = (a_bits, w_bits)
        return PrecisionConfig(layers, dict(self.patches), dict(self.meta))

    def to_dict(self) -> dict:
        d: dict = {"layers": {k: {"a_bits": a, "w_bits": w} for k, (a, w) in self.layers.items()}}
        if self.patches:
            d["patches"] = {str(p): dict(v) for p, v in self.patches.items()}
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> PrecisionConfig:
        if not isinstance(d, Mapping) or "layers" not in d:
            raise ConfigError("a precision configuration needs a 'layers' mapping: {layer: {a_bits, w_bits}}")
        layers = {}
        for k, v in d["layers"].items():
            if isinstance(v, Mapping):
                layers[k] = (v.get("a_bits"), v.get("w_bits"))
            elif isinstance(v, (list, tuple)) and len(v) == 2:
                layers[k] = tuple(v)
            else:
                raise ConfigError(f"layer {k!r}: expected {{a_bits, w_bits}} or [a, w], got {v!r}")
            if None in layers[k]:
                raise ConfigError(f"layer {k!r}: both a_bits and w_bits are required")
        patches = {int(p): {k: int(a) for k, a in v.items()} for p, v in (d.get("patches") or {}).items()}
        return cls(layers, patches, dict(d.get("meta") or {}))

    def save(self, path: str | Path) -> Path:
        """Write JSON or YAML (by suffix), atomically."""

        path = Path(path)
        if path.suffix in (".yaml", ".yml"):

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2)
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PrecisionConfig:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"precision configuration {path} does not exist")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                d = yaml.safe_load(text)
            else:
                d = json.loads(text)
        except Exception as e:  # noqa: BLE001 - any parse error becomes a config error
            raise ConfigError(f"cannot parse precision configuration {path}: {e}") from None
        return cls.from_dict(d)

    def digest(self) -> str:
        """Short stable hash of the layer assignment (for round tables and caches)."""
        d = {"layers": {k: list(v) for k, v in sorted(self.layers.items())},
             "patches": {str(p): dict(sorted(v.items())) for p, v in sorted(self.patches.items())}}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]
