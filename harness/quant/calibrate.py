"""Post-training calibration of the activation quantizers (min/max or percentile)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from harness.graph.spec import INPUT
from harness.quant.qnet import QuantNet, iter_inputs


@torch.no_grad()
def calibrate(qnet: QuantNet, calib: torch.Tensor | Iterable, sequential: bool = True) -> QuantNet:
    """Set every activation range from the calibration inputs (each :class:`ActQuant`'s policy decides how).

    ``sequential`` (default): layer by layer over the whole calibration set, each tensor's range is taken on
    the values the quantized upstream network produces (weights fake-quantized, earlier tensors already
    quantized), which is what the integer model will see. ``False``: one pass over the float (folded) network.
    Keep the calibration set small (a few hundred images): sequential mode holds the live tensors of all of it.
    """
    was = qnet.training
    qnet.eval()
    batches = list(iter_inputs(calib))
    if not batches:
        raise ValueError("calibration needs at least one batch")
    if not sequential:
        for n in qnet.tensor_names():
            qnet.act(n).start_observing()
        for x in batches:
            qnet(x)
        for n in qnet.tensor_names():
            qnet.act(n).finish_observing()
        qnet.train(was)
        return qnet
    x = torch.cat(batches)
    chunks = list(torch.split(x, 256))

    def settle(name: str, values: list[torch.Tensor]) -> list[torch.Tensor]:
        a = qnet.act(name)
        a.start_observing()
        for v in values:
            a(v)
        a.finish_observing()
        return [a(v) for v in values]

    vals = [{INPUT: v} for v in settle(INPUT, chunks)]
    for i, s in enumerate(qnet.specs):
        outs = [qnet.run_layer(i, v, quantize_output=False) for v in vals]
        for v, o in zip(vals, settle(s.name, outs)):
            v[s.name] = o
    qnet.train(was)
    return qnet
