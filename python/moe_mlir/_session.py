"""moe_mlir.InferenceSession: run .moeb artifacts like onnxruntime runs
ONNX models (moe_mlir._runtime, the runtime alone: no LLVM, no MLIR)."""
import operator
import os
from collections.abc import Mapping

import numpy as np

from . import _runtime
from ._errors import InvalidArgument, NotFound

__all__ = ["InferenceSession", "NodeArg"]

# Runtime dtype codes (moe_dtype_t) -> ONNX Runtime's type strings.
_ORT_TYPES = {
    0: "tensor(float)", 1: "tensor(double)", 2: "tensor(float16)",
    3: "tensor(bfloat16)", 4: "tensor(int64)", 5: "tensor(int32)",
    6: "tensor(int8)", 7: "tensor(uint8)", 8: "tensor(bool)",
    9: "tensor(int16)", 10: "tensor(uint16)", 11: "tensor(uint32)",
    12: "tensor(uint64)",
}

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class NodeArg:
    """An input or output of a session's signature, as onnxruntime's
    NodeArg: ``name``; ``shape``, a list with an int per static dim, the
    symbol (str) per symbolic dim and None per anonymous one; ``type``, the
    ONNX Runtime type string ("tensor(float)", ...); and ``dtype``, the
    numpy dtype of its arrays."""

    __slots__ = ("name", "shape", "type", "dtype")

    def __init__(self, name, shape, type, dtype):
        self.name = name
        self.shape = shape
        self.type = type
        self.dtype = dtype

    def __repr__(self):
        return (f"NodeArg(name={self.name!r}, type={self.type!r}, "
                f"shape={self.shape!r})")

    def __eq__(self, other):
        return (isinstance(other, NodeArg) and self.name == other.name and
                self.shape == other.shape and self.type == other.type)

    __hash__ = None


def _node_args(specs):
    return [NodeArg(name, list(dims), _ORT_TYPES.get(code, "tensor(?)"),
                    _runtime.numpy_dtype(code))
            for name, code, dims in specs]


def _as_input(value):
    """`value` as an array the runtime can read in place: C-contiguous,
    aligned, native byte order. An array that is already so is passed as it
    is (no copy); others are copied once. The dtype is kept: a wrong one is
    the runtime's error, as in onnxruntime (no implicit casts)."""
    a = np.asarray(value)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.require(a, requirements=("C", "A"))


class InferenceSession:
    """A loaded .moeb artifact (moe_session_create_with_options).

    path: the artifact (str or os.PathLike).
    threads: None for the default (the machine's cores), or the number of
        threads of the session's pool, the calling thread included: 1 to
        moe_mlir.MAX_THREADS (moe_mlir.InvalidArgument otherwise).
    map_weights: False (the default) reads the artifact into memory advised
        for transparent huge pages: decode streams the weights about 15%
        faster (docs/performance.md). True maps the file instead: faster
        to load, and its pages are the page cache's, shared with other
        processes.
    profile: True times every run of an entry and every parallel loop of
        the code (moe_session_options_set_profile): profile() returns them.

    Runtime errors raise moe_mlir.RuntimeError subclasses with the
    runtime's message: NotFound (a FileNotFoundError) for a missing file,
    DataLoss for a corrupt artifact, InvalidArgument (a ValueError) for bad
    inputs. A session may run from several threads at once; the GIL is
    released while it runs.
    """

    def __init__(self, path, threads=None, map_weights=False, profile=False):
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError("path must be a str or os.PathLike, got "
                            f"{type(path).__name__}")
        self._path = os.fsdecode(os.fspath(path))
        if threads is not None:
            threads = operator.index(threads)
            # Out-of-range values go to the runtime, which refuses them.
            threads = min(max(threads, _INT64_MIN), _INT64_MAX)
        for name, value in (("map_weights", map_weights),
                            ("profile", profile)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got "
                                f"{type(value).__name__}")
        self._session = _runtime.Session(self._path, threads, map_weights,
                                         profile)
        self._inputs = {}
        self._outputs = {}
        for entry in self._session.entries():
            self._inputs[entry] = _node_args(self._session.inputs(entry))
            self._outputs[entry] = _node_args(self._session.outputs(entry))

    @property
    def path(self):
        """The artifact's path."""
        return self._path

    @property
    def threads(self):
        """The number of threads of the session's pool (the calling thread
        included)."""
        return self._session.threads

    def profile(self):
        """The profile of a session made with profile=True, since its
        creation or the last reset_profile(): a dict with "runs" (runs of
        entries), "run_ns" (their wall time in nanoseconds) and "loops", a
        list of dicts by time (most first), one per function of the code
        that the thread pool ran: "name" ("__moe_parallel_body_<n>_<ONNX
        node>"), "calls", "split_calls" (calls run in more than one
        chunk), "iterations" and "ns". InvalidArgument for a session made
        without profiling."""
        runs, run_ns, loops = self._session.profile()
        keys = ("name", "calls", "split_calls", "iterations", "ns")
        return {"runs": runs, "run_ns": run_ns,
                "loops": [dict(zip(keys, loop)) for loop in loops]}

    def reset_profile(self):
        """Empties the profile (no-op without profiling)."""
        self._session.reset_profile()

    @property
    def entries(self):
        """The artifact's entry names, in signature order ("main", and
        "prefill" and "decode" for generation); run() runs "main" unless
        told otherwise."""
        return self._session.entries()

    def _entry(self, entry):
        if not isinstance(entry, str):
            raise TypeError(f"entry must be a str, got {type(entry).__name__}")
        if entry not in self._inputs:
            raise NotFound(f"the model has no entry {entry!r} (entries: "
                           f"{', '.join(self._inputs)})")
        return entry

    def get_inputs(self, entry="main"):
        """The inputs of `entry`, in signature order (a list of NodeArg)."""
        return list(self._inputs[self._entry(entry)])

    def get_outputs(self, entry="main"):
        """The outputs of `entry`, in signature order (a list of NodeArg)."""
        return list(self._outputs[self._entry(entry)])

    def run(self, output_names, input_feed, entry="main"):
        """Runs `entry` ("main" by default) on `input_feed` ({input name:
        numpy array}; every input once) and returns the outputs named by
        `output_names` (None: all, in signature order) as a list of numpy
        arrays that own the runtime's result tensors (no copy).

        Arrays that are C-contiguous, aligned and of the input's dtype are
        read in place; others (non-contiguous, byte-swapped) are copied
        first. A wrong dtype, rank, static dim or name, a missing or extra
        input raise moe_mlir.InvalidArgument with the runtime's message.
        """
        entry = self._entry(entry)
        outputs = {o.name: i for i, o in enumerate(self._outputs[entry])}
        if not isinstance(input_feed, Mapping):
            raise TypeError("input_feed must be a dict of input name -> "
                            f"array, got {type(input_feed).__name__}")
        if output_names is not None:
            if isinstance(output_names, str):
                raise TypeError("output_names must be a list of names or "
                                "None, got a str")
            output_names = list(output_names)
            for name in output_names:
                if name not in outputs:
                    raise InvalidArgument(
                        f"the model has no output {name!r} (outputs: "
                        f"{', '.join(outputs)})")
        names, arrays = [], []
        for name, value in input_feed.items():
            if not isinstance(name, str):
                raise TypeError(f"input names must be str, got {name!r}")
            names.append(name)
            arrays.append(_as_input(value))
        results = self._session.run(names, arrays, entry)
        if output_names is None:
            return results
        return [results[outputs[n]] for n in output_names]

    def generate(self, prompt, max_new_tokens, *, temperature=0.0,
                 top_k=None, seed=None, max_length=None, callback=None):
        """Generates `max_new_tokens` tokens after `prompt` (int64 [B, T])
        with the artifact's "prefill" and "decode" entries (moe-compile
        --generation) and returns them as int64 [B, max_new_tokens].

        The key/value caches are those of a runtime generation context
        (moe_generation_*), sized for `max_length` positions (default: the
        prompt's length plus `max_new_tokens`); a request longer than
        `max_length` raises InvalidArgument before anything runs. `temperature` 0 is greedy (argmax, lowest
        index on ties); above 0 it samples from softmax(logits /
        temperature), restricted to the `top_k` most likely tokens when
        given, with numpy's default generator seeded by `seed`.
        `callback(step, tokens)` receives each step's tokens (int64 [B]) as
        they are produced (streaming).
        """
        for entry in ("prefill", "decode"):
            if entry not in self._inputs:
                raise NotFound(f"the artifact has no entry {entry!r}: "
                               "compile the model with generation=True "
                               "(moe-compile --generation)")
        prompt = np.asarray(prompt)
        if prompt.ndim != 2 or prompt.dtype.kind not in "iu":
            raise InvalidArgument("prompt must be integer tokens [B, T], got "
                                  f"{prompt.dtype} {list(prompt.shape)}")
        prompt = _as_input(prompt.astype(np.int64, copy=False))
        steps = operator.index(max_new_tokens)
        if steps < 0:
            raise InvalidArgument(f"max_new_tokens must be >= 0, got {steps}")
        batch, length = prompt.shape
        if length == 0:
            raise InvalidArgument("the prompt must hold at least one token")
        limit = length + steps if max_length is None else operator.index(
            max_length)
        if length + steps > limit:
            raise InvalidArgument(
                f"{length} prompt tokens and {steps} new ones exceed the "
                f"maximum length {limit}")
        if temperature < 0:
            raise InvalidArgument(f"temperature must be >= 0, got "
                                  f"{temperature}")
        if top_k is not None and operator.index(top_k) < 1:
            raise InvalidArgument(f"top_k must be >= 1, got {top_k}")
        rng = np.random.default_rng(seed)

        def pick(logits):
            if temperature == 0:
                return logits.argmax(-1).astype(np.int64)
            z = logits.astype(np.float64) / temperature
            if top_k is not None and top_k < z.shape[-1]:
                kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
                z = np.where(z >= kth, z, -np.inf)
            p = np.exp(z - z.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            return np.array([rng.choice(p.shape[-1], p=row) for row in p],
                            np.int64)

        generation = _runtime.Generation(self._session, batch, limit)
        logits = generation.step(prompt)
        tokens = np.empty((batch, steps), np.int64)
        for step in range(steps):
            token = pick(logits[:, -1])
            tokens[:, step] = token
            if callback is not None:
                callback(step, token.copy())
            if step + 1 == steps:
                break
            logits = generation.step(np.ascontiguousarray(token[:, None]))
        return tokens

    def __repr__(self):
        return f"<moe_mlir.InferenceSession {self._path!r}>"
