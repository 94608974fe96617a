"""The exceptions of moe_mlir (docs/python.md#errors).

The runtime's statuses (runtime/include/moe_runtime.h) become
``moe_mlir.RuntimeError`` or one of its subclasses, carrying the runtime's
message unchanged and its code; where a Python exception is natural the
subclass also derives from it (``InvalidArgument`` is a ``ValueError``,
``NotFound`` a ``FileNotFoundError``, ``Unimplemented`` a
``NotImplementedError``). Compilation failures are ``CompileError``.
"""
import builtins

__all__ = ["CompileError", "RuntimeError", "InvalidArgument", "NotFound",
           "DataLoss", "Unimplemented", "Internal", "ResourceExhausted"]


class CompileError(Exception):
    """moe_mlir.compile failed: the model is malformed, uses an operator or
    attribute the compiler does not support, or the C compiler failed.
    ``str(e)`` and ``e.diagnostics`` are the compiler's diagnostics, one per
    line, as moe-compile prints them."""

    def __init__(self, diagnostics):
        super().__init__(diagnostics)
        self.diagnostics = diagnostics


class RuntimeError(builtins.RuntimeError):
    """A status of the runtime: ``str(e)`` is the runtime's message,
    ``e.code`` its moe_status_code_t (an int) and ``e.code_name`` the
    code's name ("INVALID_ARGUMENT", ...)."""

    code = 5
    code_name = "INTERNAL"


class InvalidArgument(RuntimeError, ValueError):
    """MOE_INVALID_ARGUMENT: a wrong name, dtype, rank or shape, or a bad
    option (such as threads=0)."""
    code, code_name = 1, "INVALID_ARGUMENT"


class NotFound(RuntimeError, FileNotFoundError):
    """MOE_NOT_FOUND: a missing artifact file, or entry."""
    code, code_name = 2, "NOT_FOUND"


class DataLoss(RuntimeError):
    """MOE_DATA_LOSS: a truncated or corrupt artifact."""
    code, code_name = 3, "DATA_LOSS"


class Unimplemented(RuntimeError, NotImplementedError):
    """MOE_UNIMPLEMENTED: an artifact version or section this runtime does
    not support."""
    code, code_name = 4, "UNIMPLEMENTED"


class Internal(RuntimeError):
    """MOE_INTERNAL: an error inside the runtime or the compiled code."""
    code, code_name = 5, "INTERNAL"


class ResourceExhausted(RuntimeError):
    """MOE_RESOURCE_EXHAUSTED: memory could not be had."""
    code, code_name = 6, "RESOURCE_EXHAUSTED"


_BY_CODE = {cls.code: cls for cls in (InvalidArgument, NotFound, DataLoss,
                                      Unimplemented, Internal,
                                      ResourceExhausted)}


def _status_error(code, message):
    """The exception for a runtime status (called by the _runtime
    extension)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        err = RuntimeError(message)
        err.code, err.code_name = code, f"code {code}"
        return err
    return cls(message)
