"""Offline data sets (Fashion-MNIST, MNIST-5k, 8x8 digits, LFW person/no-person) and batching."""

from harness.data.base import DataSplits, ImageSet, batches, to_model_input
from harness.data.registry import SOURCES, load_data

__all__ = ["SOURCES", "DataSplits", "ImageSet", "batches", "load_data", "to_model_input"]
