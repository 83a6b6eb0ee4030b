"""The integer model (what the firmware runs, bit for bit), its packed storage and TFLite requantization.

The lowest layer of tinyhil's data: nothing here knows an operator's semantics (``harness.ops`` does) or how the
model is deployed.
"""
