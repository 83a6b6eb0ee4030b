"""The closed measure-and-refine loop: deploy a precision configuration, measure it on the board, learn from it.

* :mod:`harness.loop.deploy` - configurations of one trained network on the board (fake-quant, export, measure);
* :mod:`harness.loop.context` - per-layer counts measured in context as latency-table rows;
* :mod:`harness.loop.closed_loop` - the Free Bits loop: predict, measure, update the table, refine, repeat;
* :mod:`harness.loop.plots` - the figures of a run.

``tinyhil run experiment=freebits`` (:mod:`harness.experiments.freebits`) wires them together.
"""
