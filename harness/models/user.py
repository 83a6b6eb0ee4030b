"""The user's own model: ``configs/model/user.yaml`` names a ``torch.nn.Module`` by import path."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from harness.errors import ConfigError
from harness.models.registry import import_object


def load_user_model(path: str, input_shape: Sequence[int], kwargs: Mapping[str, Any] | None = None,
                    num_classes: int | None = None, **extra: Any) -> nn.Module:
    """Build ``path`` (``"module:Class"``) with ``kwargs`` and record its (C, H, W) ``input_shape``.

    ``num_classes`` is passed on only when the class accepts it (the train command sets it from the data).
    """
    cls = import_object(path)
    kw = dict(kwargs or {})
    kw.update(extra)
    if num_classes is not None:

        try:
            if "num_classes" in inspect.signature(cls).parameters:
                kw.setdefault("num_classes", num_classes)
        except (TypeError, ValueError):  # builtins without a signature
            pass
    try:
        model = cls(**kw)
    except TypeError as e:
        raise ConfigError(f"user model {path!r}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"user model {path!r} is a {type(model).__name__}, not a torch.nn.Module")
    if input_shape is None or len(input_shape) != 3:
        raise ConfigError(f"user model {path!r}: input_shape must be [C, H, W], got {input_shape!r}")
    model.input_shape = tuple(int(s) for s in input_shape)
    return model
