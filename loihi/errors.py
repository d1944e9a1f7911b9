"""Errors of the Loihi backend; all are `nengoseg.errors.NengosegError` (the CLI prints them)."""

from nengoseg.errors import NengosegError


class LoihiError(NengosegError):
    """Base class of the Loihi backend's errors."""


class LoihiUnavailable(LoihiError):
    """The board was asked for (``target="loihi"``) but NxSDK cannot be imported."""


class LoihiResourceError(LoihiError):
    """A layer cannot fit on Loihi cores; the message names the layer, the limit and the fix.

    Attributes: ``layer`` (the layer name), ``limit`` (the resource: "compartments",
    "in_axons", "out_axons" or "synapse_bits"), ``value`` (the amount needed by one
    core) and ``maximum`` (what one core has).
    """

    def __init__(self, message, layer=None, limit=None, value=None, maximum=None):
        super().__init__(message)
        self.layer = layer
        self.limit = limit
        self.value = value
        self.maximum = maximum


class LoihiNetworkError(LoihiError):
    """The network holds something nengo-loihi cannot run on chip; names the object."""


class BatchedEmulatorUnsupported(LoihiError):
    """The batched emulator (`nengoseg.loihi.batched`) cannot reproduce nengo-loihi's
    emulator exactly for this network or simulator; the message names what, and
    nengo-loihi's own emulator (``loihi.emulator: nengo-loihi``,
    ``run_loihi(..., batched=False)``) still runs it."""
