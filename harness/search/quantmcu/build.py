"""From searched per-branch precisions to what the code generator runs, and back.

A QuantMCU result is a :class:`~harness.quant.config.PrecisionConfig` whose ``layers`` hold the base
configuration and whose ``patches`` hold, per patch index, every weighted stage layer's ``a_bits`` in that
branch; ``meta["clips"]`` keeps the range chosen for every lowered tensor (``{patch: {tensor: clip}}``) so the
configuration alone rebuilds the exact per-patch models (:func:`patched_from_config`).
"""

from __future__ import annotations

from harness.errors import ConfigError
from harness.patch.intmodel import PatchedModel
from harness.patch.rebits import retarget, spec_at_bits
from harness.quant.config import PrecisionConfig
from harness.search.quantmcu.branches import Branches


def to_config(
    br: Branches,
    bits: list[dict[int, int]],
    clips: dict[tuple[int, str, int], float],
    meta: dict | None = None,
) -> PrecisionConfig:
    """The precision configuration of per-branch feature-map ``bits`` (with the clips of lowered tensors)."""
    model = br.pm.model
    layers = {
        layer.name: (model.a_bits(layer), layer.w_bits) for layer in model.layers if layer.weight is not None
    }
    patches: dict[int, dict[str, int]] = {}
    chosen: dict[str, dict[str, float]] = {}
    for p, b in enumerate(bits):
        patches[p] = {r: br.a_bits(r, b) for r in br.weighted}
        tb = br.tensor_bits(b)
        for fm in br.maps:
            for t in fm.tensors:
                if tb[t] < model.tensors[t].bits:
                    chosen.setdefault(str(p), {})[t] = float(clips[(p, t, tb[t])])
    m = {"method": "quantmcu", **(meta or {}), "clips": chosen}
    return PrecisionConfig(layers, patches, m)


def patched_from_config(br: Branches, config: PrecisionConfig) -> PatchedModel:
    """The per-patch models a configuration describes (per-patch ``a_bits`` of the stage's weighted layers)."""
    base = br.pm
    model = base.model
    clips = config.meta.get("clips", {}) if isinstance(config.meta, dict) else {}
    models = []
    for p in range(base.plan.num_patches):
        asked = config.patches.get(p, {})
        unknown = sorted(set(asked) - set(br.weighted))
        if unknown:
            raise ConfigError(f"patch {p}: {unknown} are not weighted layers of the patch stage")
        specs = {}
        for fm in br.maps:
            want = {asked[r] for r in fm.readers if r in asked}
            if len(want) > 1:
                raise ConfigError(
                    f"patch {p}: layers {list(fm.readers)} read one feature map but ask for {want}"
                )
            if not want:
                continue
            b = want.pop()
            for t in fm.tensors:
                if b != model.tensors[t].bits:
                    c = float(clips.get(str(p), {}).get(t, 1.0))
                    specs[t] = spec_at_bits(model.tensors[t], b, c)
        models.append(retarget(model, specs, name=f"{model.name}@p{p}") if specs else model)
    return PatchedModel(model, base.plan, tuple(models))
