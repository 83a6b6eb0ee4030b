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
from harness.errors import DeviceError, TableError
from harness.measure.lut import Target
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


def check_target(expected: Target, board: Board, when: str, build_flags: tuple[str, ...] = ()) -> None:
    """TableError when the firmware sources (kernels, runtime, flags) are no longer those ``expected`` names:
    a count of another kernel build must never be filed under, or compared with, this table's target."""
    from harness.measure.target import measurement_target

    now = measurement_target(board.cfg, build_flags)
    if now != expected:
        raise TableError(
            f"the firmware changed {when}: the latency table was measured with kernel build "
            f"{expected.firmware_hash} ({expected.cflags}), the sources now give {now.firmware_hash} "
            f"({now.cflags}); run again to profile the new build"
        )


class Deployer:
    """Deploy configurations of the prepared network ``p`` (:func:`harness.experiments.prepare.prepare`).

    ``target``: the latency table's target; every deployment checks, before building and after measuring, that
    the firmware sources (with ``build_flags``, which every build gets) still give that target
    (:func:`check_target`).
    """

    def __init__(
        self,
        p,
        board: Board,
        workdir: str | Path,
        target: Target | None = None,
        build_flags: tuple[str, ...] = (),
    ) -> None:
        self.p = p
        self.board = board
        self.workdir = Path(workdir)
        self.target = target
        self.build_flags = tuple(build_flags)
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
        if self.target is not None:
            check_target(self.target, self.board, "since the table was profiled", self.build_flags)
        m = run_on_board(
            model, self.board, inputs, self.workdir / tag, progress=progress, build_flags=self.build_flags
        )
        if self.target is not None:
            check_target(
                self.target, self.board, f"while {tag} was being built and measured", self.build_flags
            )
        if m.mismatched_layers:
            raise DeviceError(
                f"{tag}: {len(m.mismatched_layers)} layer(s) on {m.board} differ from the integer "
                f"reference: {', '.join(m.mismatched_layers[:5])}"
            )
        return Deployed(config, model, m, np.asarray(self.p.eval_y[:n]))
