"""Deploying precision configurations of one trained network: fake-quant, export, build, flash, measure.

:class:`Deployer` keeps one calibrated fake-quant network per configuration (calibration is the slow step on the
host), exports it to the integer IR and runs it on the board with the evaluation images, each image checked layer
by layer against the integer reference (``harness.measure.session``).

Activation precisions follow the latency table's rule (:mod:`harness.precision.groups`): tensors joined by an
add or a pool form one group with one precision, the precision its conv/linear readers ask for. (The quantizer's
own default, :func:`harness.quant.qnet.apply_config`, keeps a tensor that only an add reads at 8 bits; that
network runs other kernels than the ones the table prices, which the loop refuses.) :func:`grouped_tensor_bits`
gives every tensor its group's precision and :func:`quantize_grouped` builds the fake-quant network with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.boards import Board
from harness.codegen.artifact import layer_artifact
from harness.errors import TableError
from harness.ir.model import IntModel
from harness.measure.session import Measurement, Session
from harness.measure.target import measurement_target
from harness.precision.config import PrecisionConfig
from harness.precision.groups import grouped_tensor_bits
from harness.quant.calibrate import calibrate
from harness.quant.export import export_int_model
from harness.quant.prepare import integer_inputs, top1
from harness.quant.qnet import quantize_model
from harness.table.lut import Target


def quantize_grouped(p, config: PrecisionConfig):
    """The calibrated fake-quant network of the prepared model ``p`` at ``config``, tensors at their group's
    precision."""

    q = quantize_model(p.model, config, input_shape=p.input_shape)
    for t, b in grouped_tensor_bits(q.specs, config).items():
        q.act(t).bits = b
    calibrate(q, p.calib)
    return q


@dataclass
class Deployed:
    """One configuration on the board: the integer model and what the board measured."""

    config: PrecisionConfig
    model: IntModel
    measurement: Measurement
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

    now = measurement_target(board.cfg, build_flags)
    if now != expected:
        raise TableError(
            f"the firmware changed {when}: the latency table was measured with kernel build "
            f"{expected.firmware_hash} ({expected.cflags}), the sources now give {now.firmware_hash} "
            f"({now.cflags}); run again to profile the new build"
        )


class Deployer:
    """Deploy configurations of the prepared network ``p`` (:func:`harness.quant.prepare.prepare`).

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
        """The calibrated fake-quant network at ``config`` with grouped activation precisions (cached by the
        configuration's digest)."""
        d = config.digest()
        if d not in self._qnets:
            self._qnets[d] = quantize_grouped(self.p, config)
        return self._qnets[d]

    def host_top1(self, config: PrecisionConfig | None = None, n: int | None = None, qnet=None) -> float:
        """Fake-quant top-1 on the host over the first ``n`` evaluation images."""

        q = qnet if qnet is not None else self.qnet(config)
        n = len(self.p.eval_y) if n is None else min(n, len(self.p.eval_y))
        return top1(q, self.p.eval_x[:n], self.p.eval_y[:n])

    def deploy(self, config: PrecisionConfig, n_images: int, tag: str, qnet=None, progress=None) -> Deployed:
        """Export ``config`` (from ``qnet`` when given, e.g. after QAT), build, flash, run ``n_images``
        evaluation images; DeviceError when a layer is not bit-exact against the integer reference."""

        q = qnet if qnet is not None else self.qnet(config)
        model = export_int_model(q)  # as configured and calibrated (re-applying the config would regroup)
        return self.deploy_model(model, config, n_images, tag, progress=progress)

    def deploy_model(
        self, model: IntModel, config: PrecisionConfig, n_images: int, tag: str, progress=None
    ) -> Deployed:
        """Build, flash and run the exported integer ``model`` (of ``config``) on ``n_images`` evaluation images,
        e.g. again on more images than a first deployment ran."""
        n = max(1, min(n_images, len(self.p.eval_y)))
        inputs = integer_inputs(model, self.p.eval_x[:n])
        if self.target is not None:
            check_target(self.target, self.board, "since the table was profiled", self.build_flags)
        session = Session(self.board, self.workdir / tag, build_flags=self.build_flags)
        m = session.run(layer_artifact(model), inputs, progress=progress)  # ResultError unless bit-exact
        if self.target is not None:
            check_target(
                self.target, self.board, f"while {tag} was being built and measured", self.build_flags
            )
        return Deployed(config, model, m, np.asarray(self.p.eval_y[:n]))
