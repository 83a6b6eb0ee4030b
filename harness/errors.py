"""Errors a user can act on.

Every failure that a user can cause (bad config, model too big, build failure, emulator crash, garbled serial
line) is raised as a subclass of :class:`TinyHilError`; the CLI prints its message and exits non-zero instead of
showing a traceback.
"""


class TinyHilError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = 2


class ConfigError(TinyHilError):
    """A malformed or inconsistent configuration (unknown board, bad bit-width, ...)."""


class UnsupportedLayerError(TinyHilError):
    """The model contains a layer tinyhil cannot quantize or export."""


class DoesNotFitError(TinyHilError):
    """The model does not fit the board's flash or SRAM."""


class BuildError(TinyHilError):
    """The firmware build failed; the message carries the compiler output."""


class DeviceError(TinyHilError):
    """The board or emulator crashed, hung, or did not answer."""


class ProtocolError(TinyHilError):
    """A garbled, truncated, or unexpected line on the serial link."""


class MissingDependencyError(TinyHilError):
    """A system or data package is missing; the message says how to install it."""


class TableError(TinyHilError):
    """A latency lookup table is missing an entry or belongs to another board/timer."""


class ResultError(TinyHilError):
    """A measured result is wrong: not bit-exact, from another firmware, or missing layers. Never exits 0."""

    exit_code = 3


class InternalError(Exception):
    """A broken invariant inside tinyhil (a bug, not a user's mistake): shown with its traceback.

    Deliberately not a :class:`TinyHilError`, so the CLI never reduces it to one line.
    """


class TimingError(TinyHilError):
    """The cycle model cannot count: the timing plugin did not load, a cycle marker is missing, or the timer,
    profile and image do not belong together. Counts are never replaced by instruction counts instead."""


class ChipFitError(DoesNotFitError, TimingError):
    """An emulated board's image is larger than the real chip its timing profile stands for (a memory of the
    profile is smaller than the emulated board's): a fit failure, which a profile splits like any other."""
