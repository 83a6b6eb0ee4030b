"""Deploying precision configurations of one trained network: fake-quant, export, build, flash, measure.

:class:`Deployer` keeps one calibrated fake-quant network per configuration (calibration is the slow step on the
host), exports it to the integer IR and runs it on the board with the evaluation images, each image checked layer
by layer against the integer reference (``harness.measure.session``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.boards import Board
from harness.codegen.ir import IntModel
from harness.errors import DeviceError
from harness.measure.session import ModelMeasurement, run_on_board
from harness.quant.config import PrecisionConfig


@dataclass
class Deployed:
    """One configuration on the board: the integer model and what the board measured."""

    config: PrecisionConfig
    model: IntModel
    measurement: ModelMeasurement
    labels: np.ndarray  # labels of the images that were run

    @property
    def predictions(self) -> np.ndarray:
        return self.measurement.predictions()

    @property
    def reference_predictions(self) -> np.ndarray:
        return np.array([int(np.argmax(o)) for o in self.measurement.reference_outputs])

    @property
    def top1(self) -> float:
        return float(np.mean(self.predictions == self.labels)) if len(self.labels) else float("nan")

    @property
    def equals_reference(self) -> bool:
        """Device logits equal the integer reference's on every image (so do their predictions)."""
        return bool(self.measurement.bit_exact)


class Deployer:
    """Deploy configurations of the prepared network ``p`` (:func:`harness.experiments.prepare.prepare`)."""

    def __init__(self, p, board: Board, workdir: str | Path) -> None:
        self.p = p
        self.board = board
        self.workdir = Path(workdir)
        self._qnets: dict[str, object] = {}

    def qnet(self, config: PrecisionConfig):
        """The calibrated fake-quant network at ``config`` (cached by the configuration's digest)."""
        from harness.experiments.prepare import quantize

        d = config.digest()
        if d not in self._qnets:
            self._qnets[d] = quantize(self.p, config)
        return self._qnets[d]

    def host_top1(self, config: PrecisionConfig | None = None, n: int | None = None, qnet=None) -> float:
        """Fake-quant top-1 on the host over the first ``n`` evaluation images."""
        from harness.experiments.prepare import top1

        q = qnet if qnet is not None else self.qnet(config)
        n = len(self.p.eval_y) if n is None else min(n, len(self.p.eval_y))
        return top1(q, self.p.eval_x[:n], self.p.eval_y[:n])

    def deploy(self, config: PrecisionConfig, n_images: int, tag: str, qnet=None, progress=None) -> Deployed:
        """Export ``config`` (from ``qnet`` when given, e.g. after QAT), build, flash, run ``n_images``
        evaluation images; DeviceError when a layer is not bit-exact against the integer reference."""
        from harness.experiments.prepare import export, integer_inputs

        q = qnet if qnet is not None else self.qnet(config)
        model = export(q, config)
        n = max(1, min(n_images, len(self.p.eval_y)))
        inputs = integer_inputs(model, self.p.eval_x[:n])
        m = run_on_board(model, self.board, inputs, self.workdir / tag, progress=progress)
        if m.mismatched_layers:
            raise DeviceError(
                f"{tag}: {len(m.mismatched_layers)} layer(s) on {m.board} differ from the integer "
                f"reference: {', '.join(m.mismatched_layers[:5])}"
            )
        return Deployed(config, model, m, np.asarray(self.p.eval_y[:n]))
