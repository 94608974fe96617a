"""moe_mlir: compile Mixture-of-Experts models (ONNX or MLIR) into .moeb
artifacts and run them from Python (docs/python.md).

    import moe_mlir
    moe_mlir.compile("model.onnx", "model.moeb")
    session = moe_mlir.InferenceSession("model.moeb")
    logits, = session.run(None, {"tokens": tokens})

InferenceSession uses the runtime alone (moe_mlir._runtime); compile loads
the compiler (moe_mlir._compiler: LLVM and MLIR) on its first call.
"""
import os as _os
import pkgutil as _pkgutil

# The extension modules are built into <build>/python/moe_mlir, next to
# copies of these files (scripts/build.sh puts <build>/python on the venv's
# path). When this package is imported from the source tree instead (the
# tests put python/ first on sys.path), the extensions are found in the
# build tree: every moe_mlir folder on sys.path, then the default build
# folder of this checkout.
__path__ = _pkgutil.extend_path(__path__, __name__)
_build = _os.path.normpath(_os.path.join(
    _os.environ.get("MOE_BUILD_DIR") or
    _os.path.join(_os.path.dirname(__file__), "..", "..", "build"),
    "python", "moe_mlir"))
if (_os.path.isdir(_build) and
        _os.path.realpath(_build) not in map(_os.path.realpath, __path__)):
    __path__.append(_build)

from ._errors import (CompileError, DataLoss, Internal,  # noqa: E402
                      InvalidArgument, NotFound, ResourceExhausted,
                      RuntimeError, Unimplemented)
from ._compile import CompileWarning, compile  # noqa: E402
from ._session import InferenceSession, NodeArg  # noqa: E402
from ._runtime import MAX_SYMBOLIC_DIM, MAX_THREADS  # noqa: E402

# Public names print as moe_mlir.X (and pickle so).
for _cls in (CompileError, CompileWarning, DataLoss, InferenceSession,
             Internal, InvalidArgument, NodeArg, NotFound, ResourceExhausted,
             RuntimeError, Unimplemented):
    _cls.__module__ = __name__
del _cls

__all__ = ["compile", "InferenceSession", "NodeArg", "CompileError",
           "CompileWarning", "RuntimeError", "InvalidArgument", "NotFound",
           "DataLoss", "Unimplemented", "Internal", "ResourceExhausted",
           "MAX_THREADS", "MAX_SYMBOLIC_DIM"]
