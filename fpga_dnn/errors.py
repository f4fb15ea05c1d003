"""User-facing errors.

Every error a user can cause (bad file, bad shape, unknown name, missing tool) derives from
:class:`FpgaDnnError`; the CLI prints its message as one line and exits with status 2.
Internal bugs raise anything else and keep their traceback.
"""

from __future__ import annotations


class FpgaDnnError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is the whole message."""


class ConfigError(FpgaDnnError):
    """A flow file or option is malformed or names something unknown."""


class UnknownNameError(ConfigError):
    """A model, board, dataset, backend... name that is not known. Lists what is."""

    def __init__(self, kind: str, name: str, known):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")


class ModelFileError(FpgaDnnError):
    """A model file is missing, corrupt, or not a Keras/QKeras/HGQ2 model."""


class DataError(FpgaDnnError):
    """Input data has the wrong shape, dtype or values."""


class UnsupportedLayerError(FpgaDnnError):
    """A layer the chosen step cannot handle. Names the layer and lists what is supported."""

    def __init__(self, layer: str, layer_class: str, supported, step: str = "conversion"):
        self.layer, self.layer_class, self.supported = layer, layer_class, sorted(supported)
        super().__init__(
            f"layer {layer!r} ({layer_class}) is not supported for {step}; "
            f"supported: {', '.join(self.supported)}"
        )


class UnsupportedPrecisionError(FpgaDnnError):
    """A type the RTL step cannot reproduce exactly (too wide, unknown mode, not fixed point)."""


class ToolError(FpgaDnnError):
    """An external tool (g++, Verilator, yosys, Vivado) is missing or failed. Says where the log is."""

    def __init__(self, message: str, log_path=None):
        self.log_path = log_path
        super().__init__(message + (f" (log: {log_path})" if log_path else ""))


class MismatchError(FpgaDnnError):
    """A bit-exactness check failed where exactness was required."""


class DeviceError(FpgaDnnError):
    """The board, its overlay or its DMA is missing or failed; the message says what to check."""


class DmaError(DeviceError):
    """The DMA reported an error (status bits) or moved the wrong number of bytes.

    ``channel`` is ``'MM2S'`` or ``'S2MM'`` (or ``None``), ``status`` the status register value
    read when the error was seen. The runtime has reset the DMA before raising, so the next call
    can proceed.
    """

    def __init__(self, message: str, channel=None, status=None):
        self.channel, self.status = channel, status
        super().__init__(message)


class DmaTimeoutError(DmaError):
    """A DMA transfer did not finish within its timeout; the DMA has been reset."""
