"""Per-layer mixed-precision quantization.

Modules (import them directly; this package stays light so ``harness.precision.config`` does not pull in torch):

* ``config``      -- :class:`PrecisionConfig`, layer name -> (a_bits, w_bits)
* ``numerics``    -- pure quantization functions (weights, activations, TFLite requantization in torch)
* ``bnfold``      -- exact BatchNorm folding
* ``quantizers``  -- declared weight/activation quantizers and their policies
* ``qnet``        -- :func:`quantize_model`, :class:`QuantNet`, :func:`apply_config`, :func:`quantizable_layers`
* ``calibrate``   -- min/max or percentile calibration
* ``qat``         -- short quantization-aware fine-tuning (STE, optional PACT-style learned ranges)
* ``evaluate``    -- PTQ/QAT accuracy of a configuration
* ``accounting``  -- MACs, BitOPs, packed parameter bytes, activation bytes, peak SRAM
* ``export``      -- :func:`export_int_model`: QuantNet -> integer IR
"""
