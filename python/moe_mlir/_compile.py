"""moe_mlir.compile: ONNX or MLIR -> .moeb artifact (moe::compileModel).

The compiler extension (moe_mlir._compiler, which loads LLVM and MLIR) is
imported on the first call, so that programs that only run artifacts never
load it.
"""
import os
import warnings

from ._errors import CompileError

__all__ = ["compile", "CompileWarning"]

_EMIT = ("moe", "linalg", "buffers", "llvm", "obj", "artifact")
_TEXT_EMIT = ("moe", "linalg", "buffers", "llvm")


class CompileWarning(UserWarning):
    """Warnings the compiler printed while compiling a model successfully."""


def compile(model, output=None, *, march="native", opt_level=3,
            cc="clang-22", emit="artifact", progress=None, reference=False,
            parallel_loops=True, tile=True, sorted_experts=True,
            dot_products=True, prefetch_rows=True, prefetch_panels=True,
            fuse_gathers=True,
            fuse_epilogues=True, fuse_elementwise=True,
            vector_reductions=True, fast_exp=True, flash_attention=True,
            pack_weights=True, roll_repeats=True, raise_blocks=True,
            remainder_tiles=True, accumulator_chains=True,
            merge_tail_slices=True, panel_columns=0,
            parallel_min_work=None,
            fuse_expert_pairs=True, fuse_routing=True, generation=False,
            codegen_jobs=0):
    """Compiles `model` into a .moeb artifact (or the level `emit` names).

    model: a path (str or os.PathLike) to an ONNX (.onnx) or MLIR (.mlir)
        model, whose external data is read relative to its folder; or the
        model itself as bytes (an ONNX protobuf or MLIR text, told apart by
        their content; external data relative to the current directory).
    output: None to get the result back, or a path to write it to.
    march: the target CPU of the native code ("native", "x86-64-v2", ...).
    opt_level: 0 to 3, the optimisation level of the native code.
    cc: the C compiler that turns LLVM IR into a shared object.
    emit: "artifact" (default), "obj" (the shared object), or the IR after a
        stage: "moe", "linalg", "buffers", "llvm".
    progress: None, or a callable that receives each progress line (str).
    reference: the reference lowering only, the oracle for optimised code
        (moe-compile --reference).
    parallel_loops: run outermost parallel loops (the grouped matmul's
        experts, row tiles, attention blocks) on the session's thread pool
        (the default; False: moe-compile --no-parallel-loops, every loop on
        the calling thread). The split changes no bit for any thread count.
    tile: register-tiled contractions (False: moe-compile --no-tile).
    sorted_experts: up and down expert projections keep their rows in
        expert order (False: moe-compile --no-sorted-experts; debugging).
    dot_products: one-row contractions that read their vector dim strided
        as dot products (False: moe-compile --no-dot-products; debugging).
    prefetch_rows: loops that read rows at loaded row indices (an expert
        layer's gather and combine) prefetch them two iterations ahead
        (False: moe-compile --no-prefetch, no software prefetch at all,
        prefetch_panels included; debugging).
    prefetch_panels: register tiles prefetch the next weight block in
        memory (the expert's next column panel, or the next expert's
        first) while they read this one: multi-row tiles always, one-row
        tiles in an expert's passes after its first (False: moe-compile
        --no-prefetch-panels; debugging).
    fuse_gathers: the register tiles of the first expert matmul read the
        gathered token rows in place instead of from a gathered copy
        (False: moe-compile --no-fuse-gathers; debugging).
    fuse_epilogues: an expert matmul's bias and activation are applied to
        its register tiles before they are stored instead of in a second
        pass over its output (False: moe-compile --no-fuse-epilogues;
        debugging).
    fuse_elementwise: an elementwise op's loop is fused into the loop that
        alone reads its result, where no element is computed twice (False:
        moe-compile --no-fuse-elementwise, one loop per op; debugging).
    vector_reductions: row reductions along the innermost loop (softmax,
        normalizations) are vectorized with partial sums (False:
        moe-compile --no-vector-reductions, one scalar accumulator in the
        reference's order; debugging).
    fast_exp: exp as a polynomial the loops around it vectorize (False:
        libm's expf per element, moe-compile --no-fast-exp; debugging).
    flash_attention: attention without a cache as an online softmax over
        blocks of 128 keys (False: each block of queries' softmax over all
        its keys, moe-compile --no-flash-attention; debugging; tile=False
        and reference=True do too).
    pack_weights: constant expert weights stored in contiguous column
        panels that the expert matmul's tiles stream (False: row-major,
        moe-compile --no-pack-weights; debugging; tile=False and
        reference=True do too).
    remainder_tiles: an expert's last 2 to 5 rows after its full register
        tiles run as one tile of that many rows instead of one-row passes
        over its weights, where the weights are in narrow panels (False:
        moe-compile --no-remainder-tiles; debugging).
    accumulator_chains: one-row register tiles narrower than 8 vector
        registers rotate their k steps over up to four sets of accumulators,
        summed after the loop (another order of the same terms,
        docs/tolerance.md; False: moe-compile --no-accumulator-chains;
        debugging).
    merge_tail_slices: the slices of a split column tail narrower than a
        vector (8 and 4 of 28 = 16 + 8 + 4 columns at 16 lanes) share one
        full-width accumulator in the register tile's k loop (the same
        bits; False: moe-compile --no-merge-tail-slices; debugging).
    fuse_expert_pairs: an expert layer's up and down projections run in
        one loop over experts, each expert's hidden rows read by its down
        projection while in cache (same bits; False: two loops, moe-compile
        --no-fuse-expert-pairs; debugging; sorted_experts=False and
        reference=True do too).
    fuse_routing: each row of an expert router's scores gated, its top k
        selected and the gate applied to them in one loop over rows (same
        bits; False: a pass over all rows per step, moe-compile
        --no-fuse-routing; debugging; reference=True does too).
    panel_columns: the columns of the panels expert weights are packed in
        (0, the default: a register tile's, 16 with AVX2, generation
        artifacts included; otherwise at least a vector's lanes;
        moe-compile --panel-columns; tuning).
    parallel_min_work: None (the default, 8192), or the fewest units of
        estimated work per chunk of a parallel loop (one per operation, one
        per 8 vector elements; loops with less run as fewer chunks, down to
        one, without a fork-join); 0 splits every loop (moe-compile
        --parallel-min-work; tests of the parallel paths at small shapes).
    roll_repeats: layers a model repeats with shared weights compiled once,
        in a loop (False: moe-compile --no-roll).
    raise_blocks: exported MoE blocks raised to routed moe ops at import
        (False: moe-compile --no-raise).
    generation: True to also derive the entries "prefill" and "decode",
        with a key/value cache stacked over the attention layers, from a
        causal language model (moe-compile --generation; docs/runtime.md);
        "prefill" returns the logits of the last prompt position, or of
        every position with generation="all-logits"
        (--generation-all-logits).
    codegen_jobs: how many C compiler processes compile the parts of a
        large model's code at once (0, the default: one per hardware
        thread; moe-compile --codegen-jobs). The code does not depend on it.

    Returns the result (bytes; str for the IR levels) when `output` is
    None, otherwise `output` after writing the result there. Raises
    CompileError (with the compiler's diagnostics) when the model cannot be
    compiled, FileNotFoundError / OSError when `model` cannot be read,
    ValueError / TypeError for bad arguments. The GIL is released while the
    model compiles (progress is called with it held).
    """
    if emit not in _EMIT:
        raise ValueError(f"emit must be one of {', '.join(_EMIT)}; "
                         f"got {emit!r}")
    if isinstance(opt_level, bool) or not isinstance(opt_level, int):
        raise TypeError(f"opt_level must be an int, got {opt_level!r}")
    if not 0 <= opt_level <= 3:
        raise ValueError(f"opt_level must be 0 to 3, got {opt_level}")
    for arg, value in (("march", march), ("cc", cc)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{arg} must be a non-empty str, got {value!r}")
    for arg, value in (("reference", reference),
                       ("parallel_loops", parallel_loops), ("tile", tile),
                       ("sorted_experts", sorted_experts),
                       ("dot_products", dot_products),
                       ("prefetch_rows", prefetch_rows),
                       ("prefetch_panels", prefetch_panels),
                       ("fuse_gathers", fuse_gathers),
                       ("fuse_epilogues", fuse_epilogues),
                       ("fuse_elementwise", fuse_elementwise),
                       ("vector_reductions", vector_reductions),
                       ("fast_exp", fast_exp),
                       ("flash_attention", flash_attention),
                       ("pack_weights", pack_weights),
                       ("roll_repeats", roll_repeats),
                       ("raise_blocks", raise_blocks),
                       ("remainder_tiles", remainder_tiles),
                       ("accumulator_chains", accumulator_chains),
                       ("merge_tail_slices", merge_tail_slices),
                       ("fuse_expert_pairs", fuse_expert_pairs),
                       ("fuse_routing", fuse_routing)):
        if not isinstance(value, bool):
            raise TypeError(f"{arg} must be a bool, got {value!r}")
    if isinstance(panel_columns, bool) or not isinstance(panel_columns, int):
        raise TypeError(f"panel_columns must be an int, got "
                        f"{panel_columns!r}")
    if not 0 <= panel_columns < 2**31:
        raise ValueError(f"panel_columns must be 0 to 2**31 - 1, got "
                         f"{panel_columns}")
    if parallel_min_work is not None:
        if isinstance(parallel_min_work, bool) or \
                not isinstance(parallel_min_work, int):
            raise TypeError(f"parallel_min_work must be an int or None, got "
                            f"{parallel_min_work!r}")
        if not 0 <= parallel_min_work < 2**63:
            raise ValueError(f"parallel_min_work must be 0 to 2**63 - 1, "
                             f"got {parallel_min_work}")
    if isinstance(codegen_jobs, bool) or not isinstance(codegen_jobs, int):
        raise TypeError(f"codegen_jobs must be an int, got {codegen_jobs!r}")
    if not 0 <= codegen_jobs <= 4096:
        raise ValueError(f"codegen_jobs must be 0 to 4096, got "
                         f"{codegen_jobs}")
    if generation not in (False, True, "all-logits") or \
            type(generation) not in (bool, str):
        raise TypeError(f"generation must be a bool or 'all-logits', got "
                        f"{generation!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got "
                        f"{progress!r}")

    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        name, base_dir = "<bytes>", os.getcwd()
    elif isinstance(model, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(model))
        with open(path, "rb") as f:  # FileNotFoundError, IsADirectoryError
            data = f.read()
        name = path
        base_dir = os.path.dirname(os.path.abspath(path))
    else:
        raise TypeError("model must be a path (str or os.PathLike) or bytes, "
                        f"got {type(model).__name__}")

    # Exceptions of the callback are raised after the compilation (the
    # compiler cannot be interrupted half-way).
    callback_error = []
    report = None
    if progress is not None:
        def report(line):
            if callback_error:
                return
            try:
                progress(line)
            except BaseException as e:  # noqa: B902 - re-raised below
                callback_error.append(e)

    from . import _compiler
    ok, result, diagnostics = _compiler.compile(
        data, name, base_dir, emit, cc, march, opt_level, reference,
        parallel_loops, tile, sorted_experts, dot_products, prefetch_rows,
        prefetch_panels, fuse_gathers, fuse_epilogues, fuse_elementwise,
        vector_reductions, fast_exp, flash_attention, pack_weights,
        roll_repeats, raise_blocks, remainder_tiles, accumulator_chains,
        merge_tail_slices, panel_columns, -1 if parallel_min_work is None else parallel_min_work,
        fuse_expert_pairs, fuse_routing,
        {False: 0, True: 1, "all-logits": 2}[generation],
        codegen_jobs, report)
    if callback_error:
        raise callback_error[0]
    if not ok:
        raise CompileError(diagnostics.rstrip("\n"))
    if diagnostics:
        warnings.warn(diagnostics.rstrip("\n"), CompileWarning, stacklevel=2)
    if emit in _TEXT_EMIT:
        result = result.decode("utf-8", errors="replace")
    if output is None:
        return result
    out_path = os.fspath(output)
    with open(out_path, "w" if isinstance(result, str) else "wb") as f:
        f.write(result)
    return output
