"""Bayesian Bits (van Baalen et al., NeurIPS 2020): the Free Bits paper's stage 1, a differentiable,
hardware-agnostic mixed-precision search over {2, 4, 8} bits per layer, trained with quantization-aware training.

Every quantizer is a 2-bit quantization plus gated residuals (the paper's decomposition):

    x_q = x_2 + z_4 * ((x_4 - x_2) + z_8 * (x_8 - x_4))

where ``x_b`` is the tensor fake-quantized at ``b`` bits by the deployment's own quantizer (weights: symmetric per
output channel, max scaling; activations: the calibrated range; :mod:`harness.quant.numerics`), so a gate
setting gives exactly the network deployed at those bits. The gates ``z_4, z_8`` are hard-concrete (L0) random
variables with learned ``log_alpha`` (temperature 2/3, stretch (-0.1, 1.1)); ``z_8`` only counts when ``z_4`` is
on, so a quantizer's bits are 2 with probability ``1 - p_4``, 4 with ``p_4 (1 - p_8)``, 8 with ``p_4 p_8``
(``p = P(z > 0)``). There is one pair of gates per weighted layer (its weights) and one per activation group
(:mod:`harness.precision.groups`: the tensors that hold one precision in the deployed network); the network's
input and its logits stay at 8 bits.

The loss is the task's cross entropy plus ``lam`` times a regulariser, normalised to 1 at uniform 8 bits:

* ``regulariser="bitops"`` (the paper's): expected BitOPs, ``sum over layers of MACs * E[a_bits] * E[w_bits]``;
* ``regulariser="latency"`` (quantlib's hardware-aware variant): expected count from the measured table, per layer
  ``sum over (a, w, o) of P(a) P(w) P(o) * LUT[a, w, o]`` (``o``: the precision its consumers read, the group the
  layer writes), weightless layers at their group's precision.

After training, a gate is on when ``P(z > 0) > 0.5``; the configuration is returned (consistent by construction).
Sweeping ``lam`` gives a family of starting configurations (:func:`bayesbits_family`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data.base import DataSplits, batches
from harness.errors import ConfigError, TableError
from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import PrecisionConfig
from harness.precision.groups import NO_WEIGHTS, activation_groups
from harness.quant import numerics as N
from harness.quant.calibrate import calibrate
from harness.quant.qnet import QuantNet, _key, quantize_model
from harness.search import _take, register_start
from harness.table.lut import LatencyTable

GAMMA, ZETA, BETA = -0.1, 1.1, 2.0 / 3.0  # hard-concrete stretch and temperature (Louizos et al., 2018)
BITS = (2, 4, 8)
REGULARISERS = ("bitops", "latency")
_LOG_RATIO = math.log(-GAMMA / ZETA)


@dataclass(frozen=True)
class BayesBitsSettings:
    """See :class:`harness.config.schema.BayesBitsMethod` for each field."""

    lam: float = 0.05
    regulariser: str = "bitops"
    epochs: int = 3
    n_train: int | None = 2000
    batch_size: int = 64
    lr: float = 1e-4
    gate_lr: float = 0.2
    gate_init: float = 3.0
    n_calib: int = 128
    input_bits: int = 8
    out_bits_rule: str = "consumer"
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.regulariser not in REGULARISERS:
            raise ConfigError(
                f"bayesbits regulariser must be one of {REGULARISERS}, got {self.regulariser!r}"
            )
        if self.lam < 0 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"bayesbits needs lam >= 0, epochs >= 1 and batch_size >= 1 (got {self.lam}, {self.epochs}, "
                f"{self.batch_size})"
            )
        if self.input_bits not in BITS:
            raise ConfigError(f"bayesbits input_bits must be one of {BITS}, got {self.input_bits}")


class Gates(nn.Module):
    """The two nested hard-concrete gates (4-bit and 8-bit residuals) of one quantizer or activation group."""

    def __init__(self, init: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((2,), float(init)))

    def p_on(self) -> torch.Tensor:
        """``P(z > 0)`` of each gate (differentiable)."""
        return torch.sigmoid(self.log_alpha - BETA * _LOG_RATIO)

    def sample(self) -> torch.Tensor:
        """Gate values: a stretched, clipped concrete sample while training, 0/1 by ``P(z > 0) > 0.5`` else."""
        if not self.training:
            return (self.p_on() > 0.5).to(self.log_alpha.dtype)
        u = torch.rand(2).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / BETA)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)

    def probs(self) -> torch.Tensor:
        """``(P(2 bits), P(4 bits), P(8 bits))``."""
        p4, p8 = self.p_on()
        return torch.stack([1 - p4, p4 * (1 - p8), p4 * p8])

    def bits(self) -> int:
        p4, p8 = (self.p_on() > 0.5).tolist()
        return 8 if p4 and p8 else 4 if p4 else 2


class _Fixed(nn.Module):
    """An activation group whose precision is not searched (the network input, the logits)."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.fixed = int(bits)

    def probs(self) -> torch.Tensor:
        return torch.tensor([float(b == self.fixed) for b in BITS])

    def bits(self) -> int:
        return self.fixed


def _mix(xs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    x2, x4, x8 = xs
    return x2 + z[0] * ((x4 - x2) + z[1] * (x8 - x4))


class GatedWeightQuant(nn.Module):
    """Stands in for a layer's :class:`~harness.quant.quantizers.WeightQuant` during the search."""

    def __init__(self, gates: Gates) -> None:
        super().__init__()
        self.gates = gates
        self.enabled = True
        self.bits = 8  # what the layer reports; the search's bits are the gates'

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        return N.weight_scales(w, 8)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        xs = tuple(N.fake_quant_weight(w, N.weight_scales(w, b), b) for b in BITS)
        return _mix(xs, self.gates.sample())


class GatedActQuant(nn.Module):
    """Stands in for a tensor's calibrated :class:`~harness.quant.quantizers.ActQuant` during the search; tensors
    of one activation group share their gates."""

    def __init__(self, lo: float, hi: float, gates: Gates | _Fixed) -> None:
        super().__init__()
        self.register_buffer("lo", torch.tensor(float(lo)))
        self.register_buffer("hi", torch.tensor(float(hi)))
        self.gates = gates
        self.active = True

    def scale_tensor(self) -> torch.Tensor:
        return N.act_qparams(self.lo, self.hi, 8)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.gates, _Fixed):
            return N.fake_quant_act(x, self.lo, self.hi, self.gates.fixed)
        xs = tuple(N.fake_quant_act(x, self.lo, self.hi, b) for b in BITS)
        return _mix(xs, self.gates.sample())


@dataclass
class GatedNet:
    """A :class:`QuantNet` whose quantizers are gated, with its gates by layer and by activation group."""

    qnet: QuantNet
    weight_gates: dict[str, Gates]
    group_gates: list[Gates | _Fixed]
    layers: list[LayerSpec]

    def gate_parameters(self) -> list[nn.Parameter]:
        mods = list(self.weight_gates.values()) + [g for g in self.group_gates if isinstance(g, Gates)]
        return [m.log_alpha for m in mods]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.qnet.named_parameters() if "log_alpha" not in n and p.requires_grad]

    def config(self, meta: dict | None = None) -> PrecisionConfig:
        groups = activation_groups(self.layers)
        return PrecisionConfig(
            {
                n: (self.group_gates[groups.input_group(n)].bits(), self.weight_gates[n].bits())
                for n in groups.weighted
            },
            meta=dict(meta or {}),
        )


def gated_net(qnet: QuantNet, *, gate_init: float, input_bits: int = 8, output_bits: int = 8) -> GatedNet:
    """Replace the quantizers of a calibrated ``qnet`` (in place) by gated ones (see the module docstring)."""
    layers = list(qnet.specs)
    groups = activation_groups(layers)
    out_groups = {g for g, rs in enumerate(groups.readers) if not rs}
    group_gates: list[Gates | _Fixed] = []
    for g in range(len(groups.readers)):
        if g == groups.group_of[INPUT]:
            group_gates.append(_Fixed(input_bits))
        elif g in out_groups:
            group_gates.append(_Fixed(output_bits))
        else:
            group_gates.append(Gates(gate_init))
    for t in qnet.tensor_names():
        a = qnet.act(t)
        qnet.acts[_key(t)] = GatedActQuant(float(a.lo), float(a.hi), group_gates[groups.group_of[t]])
    weight_gates = {}
    for n in groups.weighted:
        layer = qnet.layer(n)
        weight_gates[n] = Gates(gate_init)
        layer.weight_quant = GatedWeightQuant(weight_gates[n])
        layer.quant_bias = False  # the bias is quantized at deployment; its grid depends on the gated scales
    qnet.integer_exact = False
    return GatedNet(qnet, weight_gates, group_gates, layers)


# ------------------------------------------------------------------------------------------ regularisers


def latency_matrices(
    layers: Sequence[LayerSpec],
    table: LatencyTable,
    out_bits_rule: str = "consumer",
    input_bits: int = 8,
    output_bits: int = 8,
) -> dict[str, np.ndarray]:
    """Per layer, the table's count over bits: weighted layers ``[a, w, o]`` (3x3x3 over (2, 4, 8); with a fixed
    ``out_bits_rule`` every o gets that row), weightless ones ``[g]``. TableError names an entry the table lacks.
    The network input's and output's groups are fixed at ``input_bits``/``output_bits`` (their gates never move),
    so a layer reading the input or writing the output is priced at those bits whatever the index (the table
    profiles only them: ``profile.input_bits``/``output_bits``)."""
    groups = activation_groups(layers)
    fixed = {groups.group_of[INPUT]: input_bits}
    fixed.update({g: output_bits for g, rs in enumerate(groups.readers) if not rs and g not in fixed})
    out: dict[str, np.ndarray] = {}
    for s in layers:
        k = s.key()
        fa = fixed.get(groups.group_of[s.inputs[0]])
        fo = fixed.get(groups.group_of[s.name])
        try:
            if s.has_weights:
                m = np.zeros((3, 3, 3))
                for i, a in enumerate(BITS):
                    for j, w in enumerate(BITS):
                        for ko, o in enumerate(BITS):
                            oo = o if out_bits_rule == "consumer" else int(out_bits_rule)
                            m[i, j, ko] = table.estimate(k, fa or a, w, fo or oo)[0]
            else:
                gg = fa or fo
                m = np.array([table.estimate(k, gg or g, NO_WEIGHTS, gg or g)[0] for g in BITS])
        except TableError as e:
            raise TableError(
                f"the latency regulariser needs every (a, w, o) of layer {s.name!r}: {str(e).split('; ')[0]}; "
                "profile the network on the board first"
            ) from None
        out[s.name] = m
    return out


def expected_bitops(g: GatedNet) -> torch.Tensor:
    """Expected BitOPs of the conv/linear layers, as a fraction of uniform 8 bits."""
    groups = activation_groups(g.layers)
    b = torch.tensor([float(x) for x in BITS])
    tot, ref = torch.zeros(()), 0.0
    for n in groups.weighted:
        macs = float(groups.by_name[n].macs)
        ea = (g.group_gates[groups.input_group(n)].probs() * b).sum()
        ew = (g.weight_gates[n].probs() * b).sum()
        tot = tot + macs * ea * ew
        ref += macs * 64.0
    return tot / ref


def expected_latency(g: GatedNet, mats: dict[str, np.ndarray]) -> torch.Tensor:
    """Expected table count of the network, as a fraction of its count at uniform 8 bits."""
    groups = activation_groups(g.layers)
    tot, ref = torch.zeros(()), 0.0
    for s in g.layers:
        m = torch.as_tensor(mats[s.name], dtype=torch.float32)
        pa = g.group_gates[groups.input_group(s.name)].probs()
        if s.has_weights:
            pw = g.weight_gates[s.name].probs()
            po = g.group_gates[groups.output_group(s.name)].probs()
            tot = tot + torch.einsum("i,j,k,ijk->", pa, pw, po, m)
            ref += float(mats[s.name][2, 2, 2])
        else:
            tot = tot + (pa * m).sum()
            ref += float(mats[s.name][2])
    return tot / ref


# ------------------------------------------------------------------------------------------ training


def _threads(n: int) -> Callable[[], None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    return lambda: torch.set_num_threads(before)


def bayesbits_search(
    model: nn.Module,
    data: DataSplits,
    input_shape: tuple[int, int, int],
    settings: BayesBitsSettings,
    *,
    table: LatencyTable | None = None,
    calib: torch.Tensor | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> PrecisionConfig:
    """Train the gated network of ``model`` (a copy; ``model`` is not changed) and read its configuration."""
    st = settings
    if st.regulariser == "latency" and table is None:
        raise ConfigError("bayesbits regulariser=latency needs the board's latency table (profile the model)")
    restore = _threads(st.threads)
    try:
        torch.manual_seed(st.seed)
        qnet = quantize_model(model, input_shape=input_shape)
        if calib is None:
            sub = data.train.subset(min(st.n_calib, len(data.train)), st.seed + 3)
            calib = next(batches(sub, input_shape, len(sub), mean=data.mean, std=data.std))[0]
        calibrate(qnet, calib[: st.n_calib])
        g = gated_net(qnet, gate_init=st.gate_init, input_bits=st.input_bits)
        mats = (
            latency_matrices(g.layers, table, st.out_bits_rule, input_bits=st.input_bits)
            if st.regulariser == "latency"
            else None
        )

        def reg() -> torch.Tensor:
            return expected_latency(g, mats) if mats is not None else expected_bitops(g)

        opt = torch.optim.Adam(
            [
                {"params": g.weight_parameters(), "lr": st.lr},
                {"params": g.gate_parameters(), "lr": st.gate_lr},
            ]
        )
        n = len(data.train) if st.n_train is None else min(int(st.n_train), len(data.train))
        t0, step, last = time.perf_counter(), 0, {}
        for epoch in range(st.epochs):
            qnet.train()
            part = data.train.subset(n, st.seed * 7919 + epoch)
            for x, y in batches(part, input_shape, st.batch_size, shuffle=True, seed=st.seed * 1000 + epoch,
                                mean=data.mean, std=data.std):  # fmt: skip
                ce = F.cross_entropy(qnet(x), y)
                r = reg()
                loss = ce + st.lam * r
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                last = {"ce": float(ce.detach()), "reg": float(r.detach())}
                if step % 10 == 0:  # training is the longest silent step of the main job
                    log(f"bayesbits epoch {epoch + 1}/{st.epochs}, step {step}: ce {last['ce']:.3f}, "
                        f"{st.regulariser} {last['reg']:.3f}")
            log(
                f"bayesbits epoch {epoch + 1}/{st.epochs}: ce {last['ce']:.3f}, {st.regulariser} {last['reg']:.3f}"
            )
        qnet.eval()
        with torch.no_grad():
            final_reg = float(reg())
        cfg = g.config()
        meta = {
            "method": f"bayesbits-{st.regulariser}",
            "lam": st.lam,
            "regulariser": st.regulariser,
            "expected_reg": final_reg,
            "steps": step,
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
        return PrecisionConfig(cfg.layers, meta=meta)
    finally:
        restore()


# ------------------------------------------------------------------------------------------ start method, cache


def _fingerprint(
    model: nn.Module, data: DataSplits, st: BayesBitsSettings, table: LatencyTable | None
) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    h.update(json.dumps([data.name, len(data.train), asdict(st)], sort_keys=True, default=str).encode())
    if table is not None and st.regulariser == "latency":
        cols = ["layer_key", "a_bits", "w_bits", "o_bits"]
        h.update(table.df.sort_values(cols)[[*cols, "count"]].to_csv(index=False).encode())
    return h.hexdigest()[:16]


def cached_search(
    model: nn.Module,
    data: DataSplits,
    input_shape: tuple[int, int, int],
    settings: BayesBitsSettings,
    *,
    table: LatencyTable | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> PrecisionConfig:
    """:func:`bayesbits_search`, its result kept in ``cache_dir`` by everything it depends on (the model's
    weights, the data set, the settings, and for the latency regulariser the table's counts)."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"bayesbits-{_fingerprint(model, data, settings, table)}.json"
        if path.is_file():
            cfg = PrecisionConfig.load(path)
            cfg.meta["cached"] = True
            return cfg
    cfg = bayesbits_search(model, data, input_shape, settings, table=table, log=log)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg.save(path)
    return cfg


def bayesbits_family(
    lams: Sequence[float], model: nn.Module, data: DataSplits, input_shape: tuple[int, int, int],
    settings: BayesBitsSettings, **kw,
) -> list[PrecisionConfig]:  # fmt: skip
    """One start per regulariser strength (independent searches from the same trained model)."""
    out = []
    for lam in lams:
        st = BayesBitsSettings(**{**asdict(settings), "lam": float(lam)})
        out.append(cached_search(model, data, input_shape, st, **kw))
    return out


def settings_from(params: dict, seed: int = 0) -> BayesBitsSettings:
    """Settings from a ``method`` block (:class:`harness.config.schema.BayesBitsMethod` without its name); a
    ``seed`` of None takes ``seed`` (the run's)."""
    known = set(BayesBitsSettings.__dataclass_fields__) - {"seed"}
    s = params.get("seed")
    return BayesBitsSettings(
        **{k: v for k, v in params.items() if k in known}, seed=int(seed if s is None else s)
    )


def _check(params: dict) -> None:
    """The method's options, before any training starts (ConfigError naming the option)."""
    settings_from(_take(params, "bayesbits"), seed=0)


@register_start("bayesbits", check=_check)
def _start_bayesbits(params: dict, layers: list[LayerSpec], context: dict) -> PrecisionConfig:
    p = _take(params, "bayesbits")
    for need in ("model", "data", "input_shape"):
        if context.get(need) is None:
            raise ConfigError(f"method 'bayesbits' trains the network: the caller must pass {need!r}")
    st = settings_from(p, seed=int(context.get("seed", 0)))
    return cached_search(
        context["model"], context["data"], tuple(context["input_shape"]), st, table=context.get("table"),
        cache_dir=context.get("cache_dir"), log=context.get("log", lambda s: None),
    )  # fmt: skip
