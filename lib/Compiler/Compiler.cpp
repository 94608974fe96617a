//===- Compiler.cpp - module -> .moeb artifact -----------------------------===//
//
// Native code: the LLVM dialect is translated to LLVM IR in process, then the
// system C compiler (clang-22 by default) optimises it and links a shared
// object, as MLIR's own GPU serialisation shells out to ptxas. The artifact
// layout is runtime/include/moe/artifact_format.h.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/Compiler.h"
#include "NativeCode.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"

#include "moe/artifact_format.h"
#include "moe/artifact_reader.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/SmallBitVector.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/X86TargetParser.h"


using namespace mlir;
using namespace mlir::moe;

namespace {

/// Entry `name` is the function `moe_entry_<name>` (code_abi.h).
constexpr char kEntryPrefix[] = "moe_entry_";

/// Percent-encodes every byte outside printable ASCII, spaces and '%' (the
/// signature is a text of space-separated fields; docs/runtime.md).
std::string encodeName(StringRef name) {
  std::string out;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u == '%' || u <= 0x20 || u >= 0x7f) {
      char buf[4];
      snprintf(buf, sizeof(buf), "%%%02X", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

FailureOr<std::string> dtypeName(Type t, Location loc) {
  if (t.isF32())
    return std::string("f32");
  if (t.isF64())
    return std::string("f64");
  if (t.isF16())
    return std::string("f16");
  if (t.isBF16())
    return std::string("bf16");
  if (t.isInteger(1))
    return std::string("bool");
  if (auto i = dyn_cast<IntegerType>(t)) {
    unsigned w = i.getWidth();
    if (w == 8 || w == 16 || w == 32 || w == 64)
      return (i.isUnsigned() ? "u" : "i") + std::to_string(w);
  }
  emitError(loc) << "element type " << t
                 << " has no runtime dtype (f32, f64, f16, bf16, i8..i64, "
                    "u8..u64, bool)";
  return failure();
}

/// "<dtype> <rank> <dim>..." for a tensor type with optional symbol names;
/// `isUnsigned` reads the integer element type as unsigned (the importer
/// makes types signless and marks such values `moe.unsigned`).
FailureOr<std::string> shapeText(Type type, ArrayAttr symbols, Location loc,
                                 bool isUnsigned = false) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t) {
    emitError(loc) << "the entry function must take and return ranked "
                      "tensors, got "
                   << type;
    return failure();
  }
  FailureOr<std::string> dtype = dtypeName(t.getElementType(), loc);
  if (failed(dtype))
    return failure();
  if (isUnsigned && (*dtype)[0] == 'i')
    (*dtype)[0] = 'u';
  if (t.getRank() > static_cast<int64_t>(::moe::artifact::kMaxRank)) {
    emitError(loc) << "rank " << t.getRank() << " of " << t
                   << " is above the runtime's limit of "
                   << ::moe::artifact::kMaxRank;
    return failure();
  }
  std::string text = *dtype + " " + std::to_string(t.getRank());
  for (int64_t d = 0; d < t.getRank(); ++d) {
    if (!t.isDynamicDim(d)) {
      text += " " + std::to_string(t.getDimSize(d));
      continue;
    }
    // "?" alone is an anonymous dim; names with a NUL, or too long for the
    // runtime, are not symbols.
    std::string symbol;
    if (symbols && d < static_cast<int64_t>(symbols.size()))
      if (auto s = dyn_cast<StringAttr>(symbols[d]))
        if (!s.getValue().contains('\0'))
          symbol = encodeName(s.getValue());
    if (symbol.size() + 1 > ::moe::artifact::kMaxNameLength)
      symbol.clear();
    text += " ?" + symbol;
  }
  return text;
}

/// The name of an input or output (`what`, for messages): its `onnx.name`,
/// else `fallback`.
/// Names are untrusted text: an empty one or one with a NUL byte (which no
/// C API caller could pass) is refused.
FailureOr<StringRef> nameOf(DictionaryAttr attrs, StringRef fallback,
                            StringRef what, std::string &storage,
                            Location loc) {
  if (attrs)
    if (auto n = attrs.getAs<StringAttr>("onnx.name")) {
      StringRef why = n.getValue().empty() ? "is empty"
                      : n.getValue().contains('\0')
                          ? "contains a NUL byte"
                      : encodeName(n.getValue()).size() >
                              ::moe::artifact::kMaxNameLength
                          ? "is longer than the runtime accepts (4096 bytes "
                            "encoded)"
                          : "";
      if (!why.empty()) {
        emitError(loc) << "the name of " << what << " " << why;
        return failure();
      }
      return n.getValue();
    }
  storage = fallback.str();
  return StringRef(storage);
}

/// Features the code generated for `march` may use, as far as the runtime
/// can check them: the host's for "native"; for a name LLVM's X86 tables
/// know (the psABI levels x86-64-v2/v3/v4, a CPU such as skylake-avx512 or
/// znver3), its features there; none otherwise (documented in
/// docs/runtime.md). The runtime's list (kCheckableCpuFeatures) is the one
/// both sides use.
std::vector<std::string> requiredFeatures(StringRef march) {
  std::vector<std::string> out;
  if (march == "native") {
    llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
    for (const char *f : ::moe::artifact::kCheckableCpuFeatures)
      if (host.lookup(f))
        out.push_back(f);
    return out;
  }
  // Without a named CPU's features the tiles would assume SSE2 only, and
  // the loader would run its AVX-512 code on a CPU without it (SIGILL)
  // instead of refusing it.
  if (llvm::X86::parseArchX86(march, /*Only64Bit=*/true) ==
      llvm::X86::CK_None)
    return out;
  // The tables list a CPU's own features; those they imply (avx512f for
  // x86-64-v4's avx512bw, avx for avx2) are added.
  SmallVector<StringRef> listed;
  llvm::X86::getFeaturesForCPU(march, listed);
  llvm::StringMap<bool> cpu;
  for (StringRef f : listed) {
    cpu[f] = true;
    llvm::X86::updateImpliedFeatures(f, /*Enabled=*/true, cpu);
  }
  for (const char *f : ::moe::artifact::kCheckableCpuFeatures)
    if (cpu.lookup(f))
      out.push_back(f);
  return out;
}

/// Refuses a --march that clang would refuse, before any lowering (it
/// used to fail at the clang step, after the whole pipeline had run). The
/// code is compiled for the host's architecture: on x86-64 hosts a name
/// must be `native` or a 64-bit x86 CPU or level that LLVM's X86 tables
/// know (clang's own check for x86 targets, `parseArchX86`; a --cc of
/// another LLVM release may know other names); other hosts are not
/// checked here.
LogicalResult checkMarch(StringRef march, Location loc) {
  if (march == "native")
    return success();
#if defined(__x86_64__) || defined(_M_X64)
  if (llvm::X86::parseArchX86(march, /*Only64Bit=*/true) ==
      llvm::X86::CK_None)
    return emitError(loc) << "unsupported march (--march) '" << march
                          << "': expected 'native' or a 64-bit x86 CPU or "
                             "level that LLVM " LLVM_VERSION_STRING
                             " knows (x86-64, x86-64-v2, x86-64-v3, "
                             "x86-64-v4, haswell, znver3, skylake-avx512, "
                             "...)";
#endif
  return success();
}

/// The vector register width the code for `march` may assume: 512 with
/// AVX-512F, 256 with AVX, else 128 (SSE2, the x86-64 baseline).
int64_t vectorBitsFor(StringRef march) {
  std::vector<std::string> features = requiredFeatures(march);
  if (llvm::is_contained(features, "avx512f"))
    return 512;
  if (llvm::is_contained(features, "avx") ||
      llvm::is_contained(features, "avx2"))
    return 256;
  return 128;
}

/// The CPU lowering `options` ask for (none with --reference).
CpuCodegenOptions cpuCodegenOptions(const CompileOptions &options) {
  CpuCodegenOptions cpu;
  if (!options.reference) {
    cpu.sortExpertLayouts = options.sortExpertLayouts;
    cpu.fuseExpertPairs = options.sortExpertLayouts && options.fuseExpertPairs;
    cpu.fuseRouting = options.fuseRouting;
    cpu.fuseElementwise = options.fuseElementwise;
    cpu.cpuLoopOrder = true;
    cpu.vectorReductions = options.vectorReductions;
    cpu.refineLayouts = true;
    cpu.tileVectorBits = options.tile ? vectorBitsFor(options.march) : 0;
    std::vector<std::string> features = requiredFeatures(options.march);
    cpu.fma = llvm::is_contained(features, "fma") ||
              llvm::is_contained(features, "avx512f");
    cpu.parallelLoops = options.parallelLoops;
    cpu.parallelMinChunkWork = options.parallelMinChunkWork;
    cpu.parallelSplitLeadingDims = options.parallelSplitLeadingDims;
    cpu.dotProducts = options.dotProducts;
    // Two slots ahead: at the MoEUT-44M feed-forward shape a C loop of the
    // combine read its rows at 11 GB/s one ahead, 15 GB/s two or four
    // ahead, 7 GB/s without.
    cpu.prefetchDistance = options.prefetchRows ? 2 : 0;
    // (--no-prefetch: no software prefetch at all.)
    cpu.prefetchPanels =
        options.tile && options.prefetchRows && options.prefetchPanels;
    cpu.fuseRowGathers = options.fuseGathers;
    cpu.fuseEpilogues = options.fuseEpilogues;
    cpu.remainderTiles = options.remainderTiles;
    // (Four sets: a 1 x 16 tile's two registers become eight.)
    cpu.accumulatorChains = options.accumulatorChains ? 4 : 1;
    cpu.mergeTailSlices = options.mergeTailSlices;
    // (The polynomial is FMAs: without the instruction each would be a
    // libm call.)
    cpu.approximateExp = options.tile && options.fastExp && cpu.fma;
    cpu.flashKeyBlock = options.tile && options.flashAttention ? 128 : 0;
    cpu.skipMaskedKeyBlocks = options.skipMaskedKeyBlocks;
  }
  return cpu;
}

/// Refuses any statically shaped tensor over kMaxTensorBytes, located at
/// the op (the ONNX node) that makes it.
LogicalResult checkTensorSizes(ModuleOp module) {
  bool failedAny = false;
  auto check = [&](Type type, Location loc) {
    auto t = dyn_cast<RankedTensorType>(type);
    if (!t || !t.hasStaticShape() || !t.getElementType().isIntOrFloat())
      return;
    uint64_t bits = std::max(8u, t.getElementTypeBitWidth());
    uint64_t bytes = bits / 8;
    // A 0 counts as 1, as in the runtime's reader (kMaxStaticBytes): the
    // other dims of an empty tensor still make its strides.
    for (int64_t dim : t.getShape()) {
      int64_t d = std::max<int64_t>(dim, 1);
      if (bytes > kMaxTensorBytes / static_cast<uint64_t>(d)) {
        bytes = kMaxTensorBytes + 1;
        break;
      }
      bytes *= static_cast<uint64_t>(d);
    }
    if (bytes > kMaxTensorBytes) {
      emitError(loc) << "tensor " << t << " is larger than the limit of "
                     << (kMaxTensorBytes >> 30)
                     << " GiB for one tensor (docs/security.md)";
      failedAny = true;
    }
  };
  module.walk([&](Operation *op) {
    for (Value v : op->getResults())
      check(v.getType(), op->getLoc());
    for (Region &r : op->getRegions())
      for (Block &b : r)
        for (BlockArgument a : b.getArguments())
          check(a.getType(), a.getLoc());
  });
  return failure(failedAny);
}

LogicalResult runPipeline(ModuleOp module, const CompileOptions &options,
                          function_ref<void(OpPassManager &)> build) {
  PassManager pm(module.getContext());
  if (options.configure && failed(options.configure(pm)))
    return failure();
  build(pm);
  return pm.run(module);
}

} // namespace

LogicalResult mlir::moe::compileModule(ModuleOp module,
                                       const CompileOptions &options,
                                       llvm::raw_ostream &out) {
  MLIRContext *ctx = module.getContext();
  Location loc = module.getLoc();
  auto progress = [&](const Twine &msg) {
    if (options.progress)
      options.progress(msg.str());
  };

  // 0. No tensor may be larger than the documented limit: a static shape
  // from the model (e.g. ConstantOfShape of [2^20, 2^20]) is refused here,
  // at its node, rather than failing an allocation at run time.
  if (failed(checkTensorSizes(module)))
    return failure();
  if (failed(checkMarch(options.march, loc)))
    return failure();
  // Panels narrower than a vector would leave every expert product to the
  // loop path.
  if (int64_t lanes = vectorBitsFor(options.march) / 32;
      options.panelColumns != 0 && options.panelColumns < lanes)
    return emitError(loc) << "--panel-columns must be 0 (the default "
                             "width) or at least "
                          << lanes << " (a vector's lanes at this --march), got "
                          << options.panelColumns;

  // 1. Weights become arguments (and the artifact's weight section).
  progress("outlining weights");
  if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
        // Weight layouts first: transposes of constants are evaluated
        // here, once, instead of on every call.
        // Constant selectors too, stored [D, E] for the tiles (not in the
        // reference lowering, which reads them as the op defines them).
        MoeFoldConstantLayoutsOptions layouts;
        layouts.selectorsByColumn = !options.reference;
        pm.addPass(createMoeFoldConstantLayouts(layouts));
        // The generation entries are copies of @main: derived before the
        // weights are outlined, so that they share the weight records.
        if (options.generation)
          pm.addPass(createMoeGenerationEntries(
              MoeGenerationEntriesOptions{options.generationAllLogits}));
        // Expert weights in the column panels the tiles read (a tail
        // narrower than a vector joins the last panel), as wide as a
        // register tile (16 columns at 256 bits, 64 at 512): each tile, an
        // expert's last few rows in one tile included, sweeps one
        // contiguous block. Generation artifacts too: a register tile
        // reading 16 columns of a wider panel steps through it by whole
        // rows, whose lines fall into a quarter of the L1 sets (the
        // MoEUT-44M prefill of 256 tokens took 17% longer with 64-column
        // panels on one thread, 13% on two), and a decode step re-measured
        // as fast over 16-column panels as over 64-column ones
        // (docs/performance.md).
        if (options.packWeights && options.tile && !options.reference) {
          int64_t bits = vectorBitsFor(options.march);
          MoePackExpertWeightsOptions pack;
          pack.panelWidth = options.panelColumns
                                ? options.panelColumns
                                : registerTileColumns(bits);
          pack.minTail = bits / 32;
          pm.addPass(createMoePackExpertWeights(pack));
        }
        MoeOutlineWeightsOptions o;
        o.minElements = options.minWeightElements;
        pm.addPass(createMoeOutlineWeights(o));
        // Then, with weights as arguments, layers that repeat with shared
        // weights are compiled once and run in a loop.
        if (options.rollRepeats && !options.reference)
          pm.addNestedPass<func::FuncOp>(createMoeRollRepeats());
      })))
    return failure();
  if (options.emit == EmitLevel::Moe) {
    module.print(out);
    return success();
  }

  // 2. The signature's records (docs/runtime.md): each entry's inputs and
  // outputs, the weights; the workspace lines are known after lowering.
  // The entries are the public functions, @main first (@prefill and
  // @decode follow for generation).
  SmallVector<func::FuncOp> entries;
  for (auto fn : module.getOps<func::FuncOp>()) {
    if (fn.isExternal() || !fn.isPublic() ||
        !SymbolTable::symbolKnownUseEmpty(fn, module))
      continue;
    // The runtime calls entry `name` through the symbol moe_entry_<name>.
    StringRef name = fn.getSymName();
    if (name.empty() || isdigit(static_cast<unsigned char>(name[0])) ||
        !llvm::all_of(name, [](char c) {
          return isalnum(static_cast<unsigned char>(c)) || c == '_';
        }))
      return emitError(fn.getLoc())
             << "the entry function @" << name
             << " needs a name of letters, digits and '_' (the runtime "
                "calls it through the symbol moe_entry_"
             << name << ")";
    if (name == "main")
      entries.insert(entries.begin(), fn);
    else
      entries.push_back(fn);
  }
  if (entries.empty() || entries.front().getSymName() != "main")
    return emitError(loc) << "the module has no entry function @main";
  std::string device = "device cpu x86-64";
  for (const std::string &f : requiredFeatures(options.march))
    device += " " + f;
  std::string weightLines;
  SmallVector<std::string> entryLines;
  // The weights section: pieces of the constants' own storage (they stay
  // alive in the context) and zero padding between them.
  std::vector<::moe::artifact::Chunk> weightChunks;
  size_t weightsSize = 0;
  auto weightValues = module->getAttrOfType<ArrayAttr>("moe.weights");
  for (func::FuncOp func : entries) {
    std::string lines;
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      DictionaryAttr attrs = func.getArgAttrDict(i);
      if (attrs && attrs.get("moe.weight"))
        continue;
      std::string storage;
      FailureOr<StringRef> name = nameOf(
          attrs, "arg" + std::to_string(i), "input " + std::to_string(i),
          storage, func.getArgument(i).getLoc());
      if (failed(name))
        return failure();
      FailureOr<std::string> shape = shapeText(
          func.getArgumentTypes()[i],
          attrs ? attrs.getAs<ArrayAttr>("onnx.dim_params") : ArrayAttr(),
          func.getArgument(i).getLoc(), attrs && attrs.get("moe.unsigned"));
      if (failed(shape))
        return failure();
      lines += "input " + encodeName(*name) + " " + *shape + "\n";
    }
    for (unsigned i = 0; i < func.getNumResults(); ++i) {
      DictionaryAttr attrs = func.getResultAttrDict(i);
      std::string storage;
      FailureOr<StringRef> name = nameOf(
          attrs, "result" + std::to_string(i), "output " + std::to_string(i),
          storage, func.getLoc());
      if (failed(name))
        return failure();
      FailureOr<std::string> shape = shapeText(
          func.getResultTypes()[i],
          attrs ? attrs.getAs<ArrayAttr>("onnx.dim_params") : ArrayAttr(),
          func.getLoc(), attrs && attrs.get("moe.unsigned"));
      if (failed(shape))
        return failure();
      lines += "output " + encodeName(*name) + " " + *shape + "\n";
    }
    entryLines.push_back(std::move(lines));
  }
  for (Attribute a : weightValues ? weightValues.getValue()
                                  : ArrayRef<Attribute>()) {
    auto dense = cast<DenseElementsAttr>(a);
    auto type = cast<RankedTensorType>(dense.getType());
    size_t esize = type.getElementTypeBitWidth() / 8;
    size_t bytes = esize * type.getNumElements();
    // Each weight starts at a multiple of 64 bytes. The bytes are written
    // from the constant itself (no copy: MoEUT-44M's are 177 MB).
    size_t offset = llvm::alignTo(weightsSize, 64);
    if (offset > weightsSize)
      weightChunks.push_back({nullptr, offset - weightsSize});
    // moe-outline-weights turns splats into fills: a weight holds every
    // element.
    assert(!dense.isSplat() && "splat constants are never outlined");
    weightChunks.push_back({dense.getRawData().data(), bytes});
    weightsSize = offset + bytes;
    FailureOr<std::string> shape = shapeText(type, ArrayAttr(), loc);
    if (failed(shape))
      return failure();
    weightLines += "weight " + std::to_string(offset) + " " +
                   std::to_string(bytes) + " row-major " + *shape + "\n";
  }
  module->removeAttr("moe.weights");
  // The code finds weight k at frame->weights[k]: the marks must number
  // the records exactly.
  for (func::FuncOp func : entries) {
    size_t numRecords = weightValues ? weightValues.size() : 0;
    llvm::SmallBitVector seen(numRecords);
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      auto w = func.getArgAttrOfType<IntegerAttr>(i, "moe.weight");
      if (!w)
        continue;
      uint64_t k = w.getValue().getZExtValue();
      if (w.getValue().isNegative() || k >= numRecords || seen.test(k))
        return emitError(func.getArgument(i).getLoc())
               << "argument " << i << " is marked moe.weight = "
               << w.getValue().getSExtValue() << ", but the module's moe.weights holds "
               << numRecords
               << " values (each index must name one of them once)";
      seen.set(k);
    }
  }
  // The signature carries the names now; LLVM translation knows no such
  // argument attributes. Inputs and weights are read-only for the code
  // (inputs belong to the caller; weights live in the artifact's read-only
  // mapping): bufferization copies before any in-place update of one.
  // moe-lower-to-host-abi reads the weight marks.
  for (func::FuncOp func : entries) {
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      SmallVector<NamedAttribute> attrs = {NamedAttribute(
          StringAttr::get(ctx, "bufferization.writable"),
          BoolAttr::get(ctx, false))};
      if (Attribute w = func.getArgAttr(i, "moe.weight"))
        attrs.push_back(
            NamedAttribute(StringAttr::get(ctx, "moe.weight"), w));
      func.setArgAttrs(i, attrs);
    }
    for (unsigned i = 0; i < func.getNumResults(); ++i)
      func.setResultAttrs(i, ArrayRef<NamedAttribute>{});
  }

  SmallVector<std::string> entryNames;
  for (func::FuncOp func : entries)
    entryNames.push_back(func.getSymName().str());

  // 3. Lowering.
  if (options.emit == EmitLevel::Linalg) {
    // The same passes as the first part of the lowering below.
    if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
          buildToLinalgPipeline(pm, cpuCodegenOptions(options));
        })))
      return failure();
    module.print(out);
    return success();
  }
  if (options.emit == EmitLevel::Buffers) {
    CpuCodegenOptions cpu = cpuCodegenOptions(options);
    cpu.stopOnBuffers = true;
    if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
          buildLowerToLLVMPipeline(pm, cpu);
        })))
      return failure();
    module.print(out);
    return success();
  }
  progress(options.reference ? "lowering to LLVM (moe-lower-to-llvm)"
            : options.tile   ? "lowering to LLVM (moe-lower-to-llvm-cpu-tiled, " +
                                 std::to_string(vectorBitsFor(options.march)) +
                                 "-bit vectors)"
                             : "lowering to LLVM (moe-lower-to-llvm-cpu)");
  if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
        buildLowerToLLVMPipeline(pm, cpuCodegenOptions(options));
        MoeExportEntriesOptions exportOptions;
        for (const std::string &name : entryNames)
          exportOptions.symbols.push_back(kEntryPrefix + name);
        pm.addPass(createMoeExportEntries(exportOptions));
      })))
    return failure();
  std::string signature = std::string(::moe::artifact::kSignatureHeader) +
                          "\n" + device + "\n" + weightLines;
  for (auto [name, lines] : llvm::zip_equal(entryNames, entryLines)) {
    std::string symbol = kEntryPrefix + name;
    auto entryFn = module.lookupSymbol<LLVM::LLVMFuncOp>(symbol);
    auto wsBytes =
        entryFn ? entryFn->getAttrOfType<IntegerAttr>("moe.workspace_bytes")
                : IntegerAttr();
    auto wsGrows =
        entryFn ? entryFn->getAttrOfType<BoolAttr>("moe.workspace_grows")
                : BoolAttr();
    if (!wsBytes || !wsGrows)
      return emitError(loc) << "the lowered entry '" << symbol
                            << "' has no workspace size";
    entryFn->removeAttr("moe.workspace_bytes");
    entryFn->removeAttr("moe.workspace_grows");
    signature += "entry " + encodeName(name) + " " + symbol + " " +
                 std::to_string(wsBytes.getValue().getZExtValue()) +
                 (wsGrows.getValue() ? " grows\n" : " exact\n") + lines +
                 "end\n";
  }
  // moe-compile writes only what the runtime reads: the runtime's own
  // strict reader checks the signature (duplicate names, sizes, ...).
  {
    ::moe::artifact::Signature parsed;
    ::moe::artifact::Result check = ::moe::artifact::parseSignature(
        signature.data(), signature.size(), parsed);
    if (!check.ok())
      return emitError(loc) << "the model's signature would be refused by "
                               "the runtime: "
                            << check.message;
  }
  registerBuiltinDialectTranslation(*ctx);
  registerLLVMDialectTranslation(*ctx);
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "moe_model");
  if (!llvmModule)
    return emitError(loc) << "translation to LLVM IR failed";
  // The code carries the digest of the signature it was compiled with; the
  // runtime refuses an artifact whose signature section does not match it.
  new llvm::GlobalVariable(
      *llvmModule, llvm::Type::getInt64Ty(llvmContext), /*isConstant=*/true,
      llvm::GlobalValue::ExternalLinkage,
      llvm::ConstantInt::get(
          llvm::Type::getInt64Ty(llvmContext),
          ::moe::artifact::signatureDigest(signature.data(),
                                           signature.size())),
      ::moe::artifact::kSignatureDigestSymbol);
  if (options.emit == EmitLevel::LLVM) {
    llvmModule->print(out, nullptr);
    return success();
  }

  // 4. Native code (NativeCode.cpp: a large module split into parts,
  // compiled side by side and linked).
  llvm::ErrorOr<std::string> cc = llvm::sys::findProgramByName(options.cc);
  if (!cc)
    return emitError(loc) << "cannot find the C compiler '" << options.cc
                          << "' on PATH";
  SmallString<128> soPath;
  if (llvm::sys::fs::createTemporaryFile("moe-model", "so", soPath))
    return emitError(loc) << "cannot create temporary files";
  TempFileRemover removeSo(soPath, options.removeTempsOnSignal);
  NativeCodeOptions native;
  native.cc = *cc;
  native.march = options.march;
  native.optLevel = options.optLevel;
  native.parts = options.codegenParts;
  native.jobs = options.codegenJobs;
  native.mergeFunctions = options.mergeFunctions;
  native.removeTempsOnSignal = options.removeTempsOnSignal;
  native.progress = progress;
  if (llvm::Error e = buildSharedObject(*llvmModule, native, soPath))
    return emitError(loc) << llvm::toString(std::move(e));
  auto so = llvm::MemoryBuffer::getFile(soPath, /*IsText=*/false);
  if (!so)
    return emitError(loc) << "cannot read the shared object: "
                          << so.getError().message();
  if (options.emit == EmitLevel::Obj) {
    out << (*so)->getBuffer();
    return success();
  }

  // 5. The artifact.
  ::moe::artifact::serializeTo(
      {{::moe::artifact::SectionKind::Signature,
        {{signature.data(), signature.size()}}},
       {::moe::artifact::SectionKind::CpuCode,
        {{(*so)->getBufferStart(), (*so)->getBufferSize()}}},
       {::moe::artifact::SectionKind::Weights, weightChunks}},
      [&](const void *data, size_t size) {
        out.write(static_cast<const char *>(data), size);
      });
  progress("artifact: signature " + Twine(signature.size()) + " B, code " +
           Twine((*so)->getBufferSize()) + " B, weights " +
           Twine(weightsSize) + " B");
  return success();
}
