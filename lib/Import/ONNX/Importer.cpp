//===- Importer.cpp - ONNX model -> MLIR (stage 1) -------------------------===//
//
// A mechanical translation: no op is given meaning here. What is checked is
// what makes a graph unreadable: the protobuf itself, opset versions, element
// types and dimensions, initializer payloads (inline, typed or external),
// value names (dangling, duplicated), cycles and function calls.
//
// This file includes ONNX headers, which need C++ exceptions; everything that
// may throw is caught here and becomes a diagnostic.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/ONNX/Importer.h"
#include "moe/Import/ONNX/OnnxOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"
#include "onnx/shape_inference/implementation.h"

#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr StringLiteral kMoeDomain = "org.moe_mlir";
constexpr StringLiteral kMsDomain = "com.microsoft";
/// Largest dimension accepted (2^40): anything larger is a corrupt file.
constexpr int64_t kMaxDim = int64_t(1) << 40;
/// Deepest nesting of model-local function calls.
constexpr int kMaxInlineDepth = 32;
/// Most nodes the graph may have once model-local functions are inlined
/// (a chain of functions each calling the next twice doubles at each level).
constexpr uint64_t kMaxInlinedNodes = uint64_t(1) << 20;

/// Canonical domain name ("ai.onnx" is the default domain "").
std::string canonicalDomain(const std::string &domain) {
  return domain == "ai.onnx" ? std::string() : domain;
}

class OnnxImporter {
public:
  OnnxImporter(MLIRContext *ctx, StringRef fileName, StringRef baseDir)
      : ctx(ctx), builder(ctx), fileName(fileName.str()),
        baseDir(baseDir.str()) {}

  OwningOpRef<ModuleOp> run(const llvm::MemoryBuffer &buffer);

private:
  // Locations and diagnostics -----------------------------------------
  Location fileLoc() { return FileLineColLoc::get(ctx, fileName, 0, 0); }
  Location namedLoc(StringRef name) {
    return NameLoc::get(StringAttr::get(ctx, name), fileLoc());
  }
  InFlightDiagnostic error(Location loc) {
    ++errors;
    return emitError(loc);
  }

  // Types and tensors ----------------------------------------------------
  FailureOr<Type> elementType(int32_t onnxType, Location loc,
                              StringRef what);
  FailureOr<RankedTensorType> valueType(const onnx::ValueInfoProto &info,
                                        Location loc,
                                        SmallVectorImpl<Attribute> *dimNames);
  FailureOr<ElementsAttr> tensorAttr(const onnx::TensorProto &tensor,
                                     Location loc, StringRef what);
  FailureOr<std::string> readExternalData(StringRef location, uint64_t offset,
                                         uint64_t length, Location loc,
                                         StringRef what);
  FailureOr<std::string> tensorBytes(const onnx::TensorProto &tensor,
                                     Type elementType, int64_t numElements,
                                     Location loc, StringRef what);

  // Graph ------------------------------------------------------------------
  LogicalResult checkOpsets();
  LogicalResult checkFunctionCalls();
  bool safeForShapeInference() const;
  LogicalResult expandFunctions(
      const google::protobuf::RepeatedPtrField<onnx::NodeProto> &nodes,
      std::vector<onnx::NodeProto> &out);
  LogicalResult inlineCall(const onnx::NodeProto &call,
                           const onnx::FunctionProto &fn, int depth,
                           std::vector<onnx::NodeProto> &out);
  LogicalResult sortNodes(std::vector<onnx::NodeProto> &nodes);
  FailureOr<NamedAttribute> attribute(const onnx::AttributeProto &attr,
                                      Location loc);
  LogicalResult importGraph(ModuleOp module);

  MLIRContext *ctx;
  OpBuilder builder;
  std::string fileName, baseDir;
  onnx::ModelProto model;
  llvm::StringMap<int64_t> opsets;
  llvm::StringMap<const onnx::FunctionProto *> functions; // "domain:name"
  llvm::StringMap<Type> inferredTypes;
  unsigned errors = 0;
  unsigned unnamed = 0;
};

} // namespace

//===----------------------------------------------------------------------===//
// Types and tensors
//===----------------------------------------------------------------------===//

FailureOr<Type> OnnxImporter::elementType(int32_t t, Location loc,
                                          StringRef what) {
  using TP = onnx::TensorProto;
  switch (t) {
  case TP::FLOAT:
    return Type(Float32Type::get(ctx));
  case TP::DOUBLE:
    return Type(Float64Type::get(ctx));
  case TP::FLOAT16:
    return Type(Float16Type::get(ctx));
  case TP::BFLOAT16:
    return Type(BFloat16Type::get(ctx));
  case TP::INT64:
    return Type(IntegerType::get(ctx, 64));
  case TP::INT32:
    return Type(IntegerType::get(ctx, 32));
  case TP::INT16:
    return Type(IntegerType::get(ctx, 16));
  case TP::INT8:
    return Type(IntegerType::get(ctx, 8));
  case TP::UINT8:
    return Type(IntegerType::get(ctx, 8, IntegerType::Unsigned));
  case TP::UINT16:
    return Type(IntegerType::get(ctx, 16, IntegerType::Unsigned));
  case TP::UINT32:
    return Type(IntegerType::get(ctx, 32, IntegerType::Unsigned));
  case TP::UINT64:
    return Type(IntegerType::get(ctx, 64, IntegerType::Unsigned));
  case TP::BOOL:
    return Type(IntegerType::get(ctx, 1));
  default:
    error(loc) << what << ": unsupported ONNX element type "
               << (onnx::TensorProto::DataType_IsValid(t)
                       ? onnx::TensorProto::DataType_Name(
                             static_cast<onnx::TensorProto::DataType>(t))
                       : std::to_string(t));
    return failure();
  }
}

FailureOr<RankedTensorType>
OnnxImporter::valueType(const onnx::ValueInfoProto &info, Location loc,
                        SmallVectorImpl<Attribute> *dimNames) {
  StringRef what = info.name();
  if (!info.has_type() || !info.type().has_tensor_type()) {
    error(loc) << "value '" << what << "' is not a tensor";
    return failure();
  }
  const onnx::TypeProto::Tensor &tt = info.type().tensor_type();
  FailureOr<Type> elt = elementType(tt.elem_type(), loc,
                                    ("value '" + what + "'").str());
  if (failed(elt))
    return failure();
  if (!tt.has_shape()) {
    error(loc) << "value '" << what << "' has no shape (its rank is needed)";
    return failure();
  }
  SmallVector<int64_t> shape;
  for (const onnx::TensorShapeProto::Dimension &d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      if (d.dim_value() < 0 || d.dim_value() > kMaxDim) {
        error(loc) << "value '" << what << "' has an absurd dimension "
                   << d.dim_value() << " (accepted: 0 to 2^40)";
        return failure();
      }
      shape.push_back(d.dim_value());
      if (dimNames)
        dimNames->push_back(StringAttr::get(ctx, ""));
    } else {
      shape.push_back(ShapedType::kDynamic);
      if (dimNames)
        dimNames->push_back(StringAttr::get(ctx, d.dim_param()));
    }
  }
  return RankedTensorType::get(shape, *elt);
}

/// Reads `length` bytes at `offset` of the external data file `location`.
/// The file is untrusted input: it must be a relative path without `..`
/// that resolves (symbolic links included) inside the model's folder, and a
/// regular file (not a device, FIFO or socket) holding the whole range.
FailureOr<std::string>
OnnxImporter::readExternalData(StringRef location, uint64_t offset,
                               uint64_t length, Location loc, StringRef what) {
  namespace path = llvm::sys::path;
  if (path::is_absolute(location) || location.starts_with("/") ||
      location.starts_with("\\")) {
    error(loc) << what << ": external data location '" << location
               << "' is an absolute path; it must be relative to the "
                  "model's folder";
    return failure();
  }
  if (location.contains('\0')) {
    error(loc) << what << ": external data location contains a NUL byte";
    return failure();
  }
  for (auto it = path::begin(location), e = path::end(location); it != e;
       ++it)
    if (*it == "..") {
      error(loc) << what << ": external data location '" << location
                 << "' leaves the model's folder ('..')";
      return failure();
    }
  SmallString<256> full(baseDir.empty() ? StringRef(".") : StringRef(baseDir));
  path::append(full, location);
  // Symbolic links may still point outside: compare the real paths.
  SmallString<256> realBase, realFile;
  if (std::error_code ec = llvm::sys::fs::real_path(
          baseDir.empty() ? StringRef(".") : StringRef(baseDir), realBase)) {
    error(loc) << what << ": cannot resolve the model's folder '" << baseDir
               << "': " << ec.message();
    return failure();
  }
  if (std::error_code ec = llvm::sys::fs::real_path(full, realFile)) {
    error(loc) << what << ": cannot open external data file '" << full
               << "': " << ec.message();
    return failure();
  }
  StringRef inside(realFile);
  if (!inside.consume_front(realBase) ||
      (!inside.empty() && !path::is_separator(inside.front()))) {
    error(loc) << what << ": external data file '" << location
               << "' resolves to '" << realFile
               << "', outside the model's folder";
    return failure();
  }
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  int fd = ::open(realFile.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    error(loc) << what << ": cannot open external data file '" << full
               << "': " << std::strerror(errno);
    return failure();
  }
  llvm::scope_exit closeFd([&] { ::close(fd); });
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error(loc) << what << ": external data file '" << location
               << "' is not a regular file";
    return failure();
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size || length > size - offset) {
    error(loc) << what << ": external data [" << offset << ", "
               << offset + length << ") lies outside '" << location << "' ("
               << size << " bytes)";
    return failure();
  }
  std::string bytes;
  bytes.resize(length);
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, &bytes[done], length - done, offset + done);
    if (n <= 0) {
      error(loc) << what << ": cannot read external data file '" << location
                 << "': " << (n < 0 ? std::strerror(errno) : "short read");
      return failure();
    }
    done += static_cast<uint64_t>(n);
  }
  return bytes;
}

FailureOr<std::string>
OnnxImporter::tensorBytes(const onnx::TensorProto &t, Type elt,
                          int64_t numElements, Location loc, StringRef what) {
  unsigned bits = elt.getIntOrFloatBitWidth();
  unsigned bytesPer = bits == 1 ? 1 : bits / 8;
  uint64_t expected = static_cast<uint64_t>(numElements) * bytesPer;
  std::string bytes;
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    uint64_t offset = 0, length = expected;
    bool hasLength = false;
    for (const auto &kv : t.external_data()) {
      if (kv.key() == "location") {
        location = kv.value();
      } else if (kv.key() == "offset" || kv.key() == "length") {
        uint64_t v = 0;
        if (StringRef(kv.value()).getAsInteger(10, v)) {
          error(loc) << what << ": external data " << kv.key() << " '"
                     << kv.value() << "' is not a number";
          return failure();
        }
        (kv.key() == "offset" ? offset : length) = v;
        hasLength |= kv.key() == "length";
      }
    }
    if (location.empty()) {
      error(loc) << what << ": external data without a location";
      return failure();
    }
    // The declared size is checked before anything is read or allocated.
    if (hasLength && length != expected) {
      error(loc) << what << ": external data holds " << length
                 << " bytes, its type needs " << expected;
      return failure();
    }
    return readExternalData(location, offset, expected, loc, what);
  }
  if (t.has_raw_data()) {
    bytes = t.raw_data();
  } else {
    // Typed fields (see onnx.proto for which field holds which type).
    auto append = [&](const void *p, size_t n) {
      bytes.append(static_cast<const char *>(p), n);
    };
    using TP = onnx::TensorProto;
    switch (t.data_type()) {
    case TP::FLOAT:
      for (float v : t.float_data())
        append(&v, 4);
      break;
    case TP::DOUBLE:
      for (double v : t.double_data())
        append(&v, 8);
      break;
    case TP::INT64:
      for (int64_t v : t.int64_data())
        append(&v, 8);
      break;
    case TP::INT32:
      for (int32_t v : t.int32_data())
        append(&v, 4);
      break;
    case TP::UINT32:
      for (uint64_t v : t.uint64_data()) {
        uint32_t u = static_cast<uint32_t>(v);
        append(&u, 4);
      }
      break;
    case TP::UINT64:
      for (uint64_t v : t.uint64_data())
        append(&v, 8);
      break;
    case TP::INT16:
    case TP::UINT16:
    case TP::FLOAT16:
    case TP::BFLOAT16:
      for (int32_t v : t.int32_data()) {
        uint16_t u = static_cast<uint16_t>(v);
        append(&u, 2);
      }
      break;
    case TP::INT8:
    case TP::UINT8:
    case TP::BOOL:
      for (int32_t v : t.int32_data()) {
        uint8_t u = static_cast<uint8_t>(v);
        append(&u, 1);
      }
      break;
    default:
      break;
    }
  }
  if (bytes.size() != expected) {
    error(loc) << what << " holds " << bytes.size() << " bytes of data, its "
               << numElements << " elements need " << expected;
    return failure();
  }
  return bytes;
}

FailureOr<ElementsAttr> OnnxImporter::tensorAttr(const onnx::TensorProto &t,
                                                 Location loc,
                                                 StringRef what) {
  FailureOr<Type> elt = elementType(t.data_type(), loc, what);
  if (failed(elt))
    return failure();
  SmallVector<int64_t> shape;
  int64_t numElements = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || d > kMaxDim) {
      error(loc) << what << " has an absurd dimension " << d;
      return failure();
    }
    shape.push_back(d);
    if (d != 0 && numElements > kMaxDim / d) {
      error(loc) << what << " has more than 2^40 elements";
      return failure();
    }
    numElements *= d;
  }
  auto type = RankedTensorType::get(shape, *elt);
  FailureOr<std::string> bytes = tensorBytes(t, *elt, numElements, loc, what);
  if (failed(bytes))
    return failure();
  if (elt->isInteger(1)) {
    SmallVector<bool> values;
    for (char c : *bytes)
      values.push_back(c != 0);
    return ElementsAttr(DenseElementsAttr::get(type, values));
  }
  return ElementsAttr(DenseElementsAttr::getFromRawBuffer(
      type, ArrayRef<char>(bytes->data(), bytes->size())));
}

//===----------------------------------------------------------------------===//
// Opsets and functions
//===----------------------------------------------------------------------===//

LogicalResult OnnxImporter::checkOpsets() {
  for (const onnx::OperatorSetIdProto &o : model.opset_import()) {
    std::string domain = canonicalDomain(o.domain());
    int64_t v = o.version();
    if (domain.empty() && (v < kMinOnnxOpset || v > kMaxOnnxOpset))
      error(fileLoc()) << "unsupported opset: ai.onnx version " << v
                       << " (supported: " << kMinOnnxOpset << " to "
                       << kMaxOnnxOpset << ")";
    else if ((domain == kMoeDomain || domain == kMsDomain) && v != 1)
      error(fileLoc()) << "unsupported opset: " << domain << " version " << v
                       << " (supported: 1)";
    opsets[domain] = v;
  }
  if (!opsets.count(""))
    error(fileLoc()) << "the model imports no ai.onnx opset";
  return success(errors == 0);
}

/// Model-local functions form a call graph that must be acyclic and shallow,
/// and inline to a bounded number of nodes. Checked before anything walks
/// function bodies recursively (libonnx shape inference does, without a
/// depth limit).
LogicalResult OnnxImporter::checkFunctionCalls() {
  auto keyOf = [](const std::string &domain, const std::string &name) {
    return canonicalDomain(domain) + ":" + name;
  };
  enum class State { Unvisited, Active, Done };
  llvm::StringMap<State> state;
  llvm::StringMap<uint64_t> inlinedSize;
  llvm::StringMap<int> depthOf; // longest call chain below, itself included
  auto tooDeep = [&](const onnx::FunctionProto &fn) {
    error(fileLoc()) << "model-local functions nest deeper than "
                     << kMaxInlineDepth << " (at '" << fn.domain() << "."
                     << fn.name() << "')";
    return failure();
  };
  // The descent is bounded by kMaxInlineDepth (checked before each call),
  // so this recursion cannot exhaust the stack.
  std::function<LogicalResult(const onnx::FunctionProto &, int)> visit =
      [&](const onnx::FunctionProto &fn, int depth) -> LogicalResult {
    std::string key = keyOf(fn.domain(), fn.name());
    state[key] = State::Active;
    uint64_t size = 0;
    int deepest = 0;
    for (const onnx::NodeProto &node : fn.node()) {
      auto callee = functions.find(keyOf(node.domain(), node.op_type()));
      if (callee == functions.end()) {
        ++size;
        continue;
      }
      std::string calleeKey = callee->first().str();
      State s = state.lookup(calleeKey);
      if (s == State::Active) {
        error(fileLoc()) << "model-local function '" << fn.domain() << "."
                         << fn.name() << "' calls '"
                         << callee->second->domain() << "."
                         << callee->second->name()
                         << "', which is still being called: recursive "
                            "functions are not supported";
        return failure();
      }
      if (s == State::Unvisited) {
        if (depth + 1 > kMaxInlineDepth)
          return tooDeep(fn);
        if (failed(visit(*callee->second, depth + 1)))
          return failure();
      }
      // org.moe_mlir calls stay calls; other functions are inlined.
      size += canonicalDomain(node.domain()) == kMoeDomain
                  ? 1
                  : inlinedSize.lookup(calleeKey);
      deepest = std::max(deepest, depthOf.lookup(calleeKey));
      size = std::min(size, kMaxInlinedNodes + 1);
    }
    if (deepest + 1 > kMaxInlineDepth)
      return tooDeep(fn);
    state[key] = State::Done;
    inlinedSize[key] = size;
    depthOf[key] = deepest + 1;
    return success();
  };
  for (const onnx::FunctionProto &fn : model.functions())
    if (state.lookup(keyOf(fn.domain(), fn.name())) == State::Unvisited &&
        failed(visit(fn, 1)))
      return failure();
  uint64_t total = 0;
  for (const onnx::NodeProto &node : model.graph().node()) {
    std::string key = keyOf(node.domain(), node.op_type());
    bool inlined = functions.count(key) &&
                   canonicalDomain(node.domain()) != kMoeDomain;
    total += inlined ? inlinedSize.lookup(key) : 1;
    if (total > kMaxInlinedNodes) {
      error(fileLoc()) << "the graph has more than " << kMaxInlinedNodes
                       << " nodes once model-local functions are inlined";
      return failure();
    }
  }
  return success();
}

namespace {
/// Whether the payload of `t` matches its dims and data type (the checks
/// libonnx's ParseData omits: it reads raw_data of any length).
bool payloadConsistent(const onnx::TensorProto &t) {
  uint64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || d > kMaxDim)
      return false;
    if (d != 0 && n > static_cast<uint64_t>(kMaxDim) / static_cast<uint64_t>(d))
      return false;
    n *= static_cast<uint64_t>(d);
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    return !t.has_raw_data();
  using TP = onnx::TensorProto;
  uint64_t bytesPer = 0, fieldCount = 0;
  switch (t.data_type()) {
  case TP::FLOAT: bytesPer = 4; fieldCount = t.float_data_size(); break;
  case TP::DOUBLE: bytesPer = 8; fieldCount = t.double_data_size(); break;
  case TP::INT64: bytesPer = 8; fieldCount = t.int64_data_size(); break;
  case TP::UINT32: bytesPer = 4; fieldCount = t.uint64_data_size(); break;
  case TP::UINT64: bytesPer = 8; fieldCount = t.uint64_data_size(); break;
  case TP::INT32: bytesPer = 4; fieldCount = t.int32_data_size(); break;
  case TP::INT16: case TP::UINT16: case TP::FLOAT16: case TP::BFLOAT16:
    bytesPer = 2; fieldCount = t.int32_data_size(); break;
  case TP::INT8: case TP::UINT8: case TP::BOOL:
    bytesPer = 1; fieldCount = t.int32_data_size(); break;
  case TP::COMPLEX64: bytesPer = 8; fieldCount = t.float_data_size() / 2; break;
  case TP::COMPLEX128:
    bytesPer = 16; fieldCount = t.double_data_size() / 2; break;
  case TP::STRING:
    return !t.has_raw_data() && static_cast<uint64_t>(t.string_data_size()) == n;
  default:
    return false;
  }
  if (t.has_raw_data())
    return t.raw_data().size() == n * bytesPer;
  return fieldCount == n;
}

/// Whether every tensor payload in `nodes` (and nested graphs) is
/// consistent, with no sparse tensors.
bool nodesSafe(const google::protobuf::RepeatedPtrField<onnx::NodeProto> &nodes,
               int depth);

bool graphSafe(const onnx::GraphProto &g, int depth) {
  if (depth > 16 || g.sparse_initializer_size())
    return false;
  for (const onnx::TensorProto &t : g.initializer())
    if (!payloadConsistent(t))
      return false;
  return nodesSafe(g.node(), depth);
}

/// libonnx 1.12's shape inference of the convolutions and poolings
/// (convPoolShapeInference) trusts its input: a kernel read from W with
/// another rank than X indexes an empty vector (a null read: found by
/// fuzz_import with a rank-2 X), a stride of 0 divides by zero, and a
/// stride below a huge declared dim loops dim / stride times. The ranks may
/// be computed in the graph, so no check of the file can rule these out.
/// guardConvPoolInference wraps those ops' inference functions in the
/// registry (once per process) with checks of the inputs and attributes
/// the original reads; a node that fails them gets no hints (stage 2
/// computes its types, or refuses it, itself). The rarer ops of the family
/// (ConvTranspose, DeformConv, MaxUnpool, MaxRoiPool, Col2Im), whose
/// inference functions have not been audited, get no hints at all. (The
/// registry is libonnx's process-wide table: another thread of a host
/// process running libonnx's inference during the first import would race
/// with the change.)
bool convPoolInputsSane(onnx::InferenceContext &ctx, bool hasWeights,
                        size_t weightIndex) {
  constexpr int64_t kMaxDim = int64_t(1) << 24;
  auto shapeOf = [&](size_t i) -> const onnx::TensorShapeProto * {
    if (i >= ctx.getNumInputs())
      return nullptr;
    const onnx::TypeProto *t = ctx.getInputType(i);
    if (!t || !t->has_tensor_type() || !t->tensor_type().has_shape())
      return nullptr;
    return &t->tensor_type().shape();
  };
  const onnx::TensorShapeProto *x = shapeOf(0);
  if (!x)
    return true; // the original infers nothing without X's shape
  int64_t rank = x->dim_size();
  // (At most 8 spatial dims of at most 2^24: libonnx's padding loop
  // stays under 2^27 steps a node.)
  if (rank < 3 || rank > 10)
    return false;
  for (const onnx::TensorShapeProto_Dimension &d : x->dim())
    if (d.has_dim_value() && (d.dim_value() < 0 || d.dim_value() > kMaxDim))
      return false;
  auto ints = [&](const char *name, size_t size, int64_t min) {
    const onnx::AttributeProto *a = ctx.getAttribute(name);
    if (!a)
      return true;
    if (static_cast<size_t>(a->ints_size()) != size)
      return false;
    return llvm::all_of(a->ints(),
                        [&](int64_t v) { return v >= min && v <= kMaxDim; });
  };
  size_t spatial = static_cast<size_t>(rank - 2);
  if (!ints("dilations", spatial, 1) || !ints("strides", spatial, 1) ||
      !ints("kernel_shape", spatial, 1) || !ints("pads", 2 * spatial, 0))
    return false;
  if (!hasWeights)
    return ctx.getAttribute("kernel_shape") != nullptr;
  const onnx::TensorShapeProto *w = shapeOf(weightIndex);
  if (!w)
    return true; // the original needs W's shape and returns without it
  if (w->dim_size() != rank)
    return false;
  for (const onnx::TensorShapeProto_Dimension &d : w->dim())
    if (d.has_dim_value() && (d.dim_value() < 0 || d.dim_value() > kMaxDim))
      return false;
  return true;
}

void guardConvPoolInference() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const onnx::OpSchema &copy :
         onnx::OpSchemaRegistry::get_all_schemas_with_history()) {
      if (!copy.domain().empty())
        continue;
      const std::string &op = copy.Name();
      enum class Kind { Keep, Weights, Pool, None };
      size_t weightIndex = op == "QLinearConv" ? 3 : 1;
      Kind kind =
          llvm::StringSwitch<Kind>(op)
              .Cases({"Conv", "ConvInteger", "QLinearConv"}, Kind::Weights)
              .Cases({"AveragePool", "MaxPool", "LpPool"}, Kind::Pool)
              .Cases({"ConvTranspose", "DeformConv", "MaxUnpool", "MaxRoiPool",
                      "Col2Im"},
                     Kind::None)
              .Default(Kind::Keep);
      if (kind == Kind::Keep)
        continue;
      auto *schema =
          const_cast<onnx::OpSchema *>(onnx::OpSchemaRegistry::Schema(
              op, copy.SinceVersion(), copy.domain()));
      if (!schema || schema->SinceVersion() != copy.SinceVersion())
        continue;
      onnx::InferenceFunction original =
          schema->GetTypeAndShapeInferenceFunction();
      schema->TypeAndShapeInferenceFunction(
          [original, kind, weightIndex](onnx::InferenceContext &ctx) {
            if (kind == Kind::None ||
                !convPoolInputsSane(ctx, kind == Kind::Weights, weightIndex))
              return;
            original(ctx);
          });
    }
  });
}

bool nodesSafe(const google::protobuf::RepeatedPtrField<onnx::NodeProto> &nodes,
               int depth) {
  using AP = onnx::AttributeProto;
  for (const onnx::NodeProto &node : nodes) {
    for (const AP &a : node.attribute()) {
      if (a.has_t() && !payloadConsistent(a.t()))
        return false;
      for (const onnx::TensorProto &t : a.tensors())
        if (!payloadConsistent(t))
          return false;
      if (a.has_sparse_tensor() || a.sparse_tensors_size())
        return false;
      if (a.has_g() && !graphSafe(a.g(), depth + 1))
        return false;
      for (const onnx::GraphProto &g : a.graphs())
        if (!graphSafe(g, depth + 1))
          return false;
    }
  }
  return true;
}
} // namespace

/// libonnx's shape inference trusts its input: it reads raw_data of any
/// length and recurses through functions without a limit (and see
/// guardConvPoolInference). It only gives type hints here, so it runs on
/// models that pass these checks; any other model is refused later with a
/// located diagnostic by the importer's own checks.
bool OnnxImporter::safeForShapeInference() const {
  if (!graphSafe(model.graph(), 0))
    return false;
  for (const onnx::FunctionProto &f : model.functions())
    if (!nodesSafe(f.node(), 0))
      return false;
  return true;
}

LogicalResult OnnxImporter::expandFunctions(
    const google::protobuf::RepeatedPtrField<onnx::NodeProto> &nodes,
    std::vector<onnx::NodeProto> &out) {
  for (const onnx::NodeProto &node : nodes) {
    std::string key = canonicalDomain(node.domain()) + ":" + node.op_type();
    auto it = functions.find(key);
    if (it == functions.end() || node.domain() == kMoeDomain) {
      out.push_back(node);
      continue;
    }
    if (failed(inlineCall(node, *it->second, 1, out)))
      return failure();
  }
  return success();
}

LogicalResult OnnxImporter::inlineCall(const onnx::NodeProto &call,
                                       const onnx::FunctionProto &fn,
                                       int depth,
                                       std::vector<onnx::NodeProto> &out) {
  Location loc = namedLoc(call.name());
  assert(depth <= kMaxInlineDepth && "checkFunctionCalls bounds the nesting");
  if (call.input_size() > fn.input_size() ||
      call.output_size() > fn.output_size()) {
    error(loc) << "node '" << call.name() << "' calls function "
               << fn.domain() << "." << fn.name() << " with "
               << call.input_size() << " inputs and " << call.output_size()
               << " outputs; it takes " << fn.input_size() << " and "
               << fn.output_size();
    return failure();
  }
  std::string prefix = (call.name().empty() ? call.op_type() : call.name()) +
                       "/" + std::to_string(out.size()) + "/";
  llvm::StringMap<std::string> rename;
  for (int i = 0; i < fn.input_size(); ++i)
    rename[fn.input(i)] = i < call.input_size() ? call.input(i) : "";
  for (int i = 0; i < fn.output_size(); ++i)
    rename[fn.output(i)] = i < call.output_size() ? call.output(i) : "";
  llvm::StringMap<const onnx::AttributeProto *> callAttrs;
  for (const onnx::AttributeProto &a : call.attribute())
    callAttrs[a.name()] = &a;
  auto mapName = [&](const std::string &name) -> std::string {
    if (name.empty())
      return name;
    auto it = rename.find(name);
    return it != rename.end() ? it->second : prefix + name;
  };
  for (const onnx::NodeProto &inner : fn.node()) {
    onnx::NodeProto node = inner;
    node.set_name(prefix + inner.name());
    for (int i = 0; i < node.input_size(); ++i)
      node.set_input(i, mapName(node.input(i)));
    for (int i = 0; i < node.output_size(); ++i)
      node.set_output(i, mapName(node.output(i)));
    node.clear_attribute();
    for (const onnx::AttributeProto &a : inner.attribute()) {
      if (a.ref_attr_name().empty()) {
        *node.add_attribute() = a;
        continue;
      }
      auto ref = callAttrs.find(a.ref_attr_name());
      if (ref == callAttrs.end()) {
        error(loc) << "node '" << call.name() << "': function " << fn.name()
                   << " needs attribute '" << a.ref_attr_name()
                   << "', which the node does not set";
        return failure();
      }
      onnx::AttributeProto copy = *ref->second;
      copy.set_name(a.name());
      *node.add_attribute() = copy;
    }
    std::string key = canonicalDomain(node.domain()) + ":" + node.op_type();
    auto callee = functions.find(key);
    if (callee != functions.end() && node.domain() != kMoeDomain) {
      if (failed(inlineCall(node, *callee->second, depth + 1, out)))
        return failure();
    } else {
      out.push_back(std::move(node));
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Graph
//===----------------------------------------------------------------------===//

LogicalResult OnnxImporter::sortNodes(std::vector<onnx::NodeProto> &nodes) {
  // Name every node (locations need one), then index producers.
  for (onnx::NodeProto &n : nodes)
    if (n.name().empty())
      n.set_name(n.op_type() + "_" + std::to_string(unnamed++));
  llvm::StringMap<size_t> producer;
  llvm::StringSet<> external;
  for (const onnx::ValueInfoProto &in : model.graph().input())
    external.insert(in.name());
  for (const onnx::TensorProto &t : model.graph().initializer())
    external.insert(t.name());
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const std::string &out : nodes[i].output()) {
      if (out.empty())
        continue;
      if (external.count(out) || producer.count(out)) {
        error(namedLoc(nodes[i].name()))
            << "node '" << nodes[i].name() << "' (" << nodes[i].op_type()
            << ") redefines value '" << out << "'";
        continue;
      }
      producer[out] = i;
    }
  }
  // Kahn's algorithm; dangling inputs are reported here.
  std::vector<unsigned> pending(nodes.size(), 0);
  std::vector<SmallVector<size_t>> users(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const std::string &in : nodes[i].input()) {
      if (in.empty() || external.count(in))
        continue;
      auto it = producer.find(in);
      if (it == producer.end()) {
        error(namedLoc(nodes[i].name()))
            << "node '" << nodes[i].name() << "' (" << nodes[i].op_type()
            << ") reads '" << in
            << "', which no node, graph input or initializer defines";
        continue;
      }
      ++pending[i];
      users[it->second].push_back(i);
    }
  }
  if (errors)
    return failure();
  std::deque<size_t> ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!pending[i])
      ready.push_back(i);
  std::vector<onnx::NodeProto> sorted;
  sorted.reserve(nodes.size());
  while (!ready.empty()) {
    size_t i = ready.front();
    ready.pop_front();
    sorted.push_back(nodes[i]);
    for (size_t u : users[i])
      if (--pending[u] == 0)
        ready.push_back(u);
  }
  if (sorted.size() != nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i)
      if (pending[i])
        error(namedLoc(nodes[i].name()))
            << "node '" << nodes[i].name() << "' (" << nodes[i].op_type()
            << ") is part of a cycle, or reads a value computed from one";
    return failure();
  }
  nodes = std::move(sorted);
  return success();
}

FailureOr<NamedAttribute>
OnnxImporter::attribute(const onnx::AttributeProto &a, Location loc) {
  using AP = onnx::AttributeProto;
  Attribute value;
  switch (a.type()) {
  case AP::INT:
    value = builder.getI64IntegerAttr(a.i());
    break;
  case AP::FLOAT:
    value = builder.getF32FloatAttr(a.f());
    break;
  case AP::STRING:
    value = builder.getStringAttr(a.s());
    break;
  case AP::INTS:
    value = builder.getDenseI64ArrayAttr(
        SmallVector<int64_t>(a.ints().begin(), a.ints().end()));
    break;
  case AP::FLOATS:
    value = builder.getDenseF32ArrayAttr(
        SmallVector<float>(a.floats().begin(), a.floats().end()));
    break;
  case AP::STRINGS: {
    SmallVector<Attribute> strings;
    for (const std::string &s : a.strings())
      strings.push_back(builder.getStringAttr(s));
    value = builder.getArrayAttr(strings);
    break;
  }
  case AP::TENSOR: {
    FailureOr<ElementsAttr> t =
        tensorAttr(a.t(), loc, ("attribute '" + a.name() + "'"));
    if (failed(t))
      return failure();
    value = *t;
    break;
  }
  default:
    error(loc) << "attribute '" << a.name() << "' has an unsupported kind "
               << AP::AttributeType_Name(a.type())
               << " (subgraphs and sparse tensors are not imported)";
    return failure();
  }
  return NamedAttribute(builder.getStringAttr(a.name()), value);
}

LogicalResult OnnxImporter::importGraph(ModuleOp module) {
  const onnx::GraphProto &graph = model.graph();
  llvm::StringMap<Value> values;

  // Function signature: graph inputs that are not initializers.
  llvm::StringSet<> initializerNames;
  for (const onnx::TensorProto &t : graph.initializer())
    if (!initializerNames.insert(t.name()).second)
      error(fileLoc()) << "initializer '" << t.name()
                                << "' is defined twice";
  SmallVector<Type> argTypes, resultTypes;
  SmallVector<DictionaryAttr> argAttrs, resultAttrs;
  SmallVector<const onnx::ValueInfoProto *> args;
  llvm::StringSet<> inputNames;
  for (const onnx::ValueInfoProto &in : graph.input()) {
    if (!inputNames.insert(in.name()).second) {
      error(fileLoc()) << "graph input '" << in.name()
                                 << "' is declared twice";
      continue;
    }
    if (initializerNames.count(in.name()))
      continue; // an initializer listed among the inputs (IR < 4 style)
    SmallVector<Attribute> dims;
    FailureOr<RankedTensorType> t = valueType(in, fileLoc(), &dims);
    if (failed(t))
      continue;
    argTypes.push_back(*t);
    argAttrs.push_back(builder.getDictionaryAttr(
        {builder.getNamedAttr("onnx.name", builder.getStringAttr(in.name())),
         builder.getNamedAttr("onnx.dim_params", builder.getArrayAttr(dims))}));
    args.push_back(&in);
  }
  for (const onnx::ValueInfoProto &out : graph.output()) {
    SmallVector<Attribute> dims;
    FailureOr<RankedTensorType> t =
        valueType(out, fileLoc(), &dims);
    if (failed(t))
      continue;
    resultTypes.push_back(*t);
    inferredTypes[out.name()] = *t; // the declared type is the best hint
    resultAttrs.push_back(builder.getDictionaryAttr(
        {builder.getNamedAttr("onnx.name", builder.getStringAttr(out.name())),
         builder.getNamedAttr("onnx.dim_params",
                              builder.getArrayAttr(dims))}));
  }
  if (graph.output_size() == 0)
    error(fileLoc()) << "the graph has no outputs";
  if (errors)
    return failure();

  builder.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(builder, fileLoc(), "main",
                                   builder.getFunctionType(argTypes,
                                                           resultTypes));
  func.setAllArgAttrs(argAttrs);
  func.setAllResultAttrs(resultAttrs);
  Block *entry = func.addEntryBlock();
  builder.setInsertionPointToStart(entry);
  for (auto [i, in] : llvm::enumerate(args))
    values[in->name()] = entry->getArgument(i);

  for (const onnx::TensorProto &t : graph.initializer()) {
    Location loc = fileLoc();
    FailureOr<ElementsAttr> attr =
        tensorAttr(t, loc, ("initializer '" + t.name() + "'"));
    if (failed(attr))
      continue;
    values[t.name()] =
        arith::ConstantOp::create(builder, loc, cast<TypedAttr>(*attr));
  }
  if (errors)
    return failure();

  std::vector<onnx::NodeProto> nodes;
  if (failed(expandFunctions(graph.node(), nodes)) ||
      failed(sortNodes(nodes)))
    return failure();

  Value none;
  for (const onnx::NodeProto &node : nodes) {
    Location loc = namedLoc(node.name());
    SmallVector<Value> operands;
    bool missing = false;
    for (const std::string &in : node.input()) {
      if (in.empty()) {
        if (!none)
          none = onnxir::NoneOp::create(builder, fileLoc(),
                                        builder.getNoneType());
        operands.push_back(none);
      } else {
        operands.push_back(values.lookup(in));
        missing |= !operands.back();
      }
    }
    // An operand whose producer was refused (already reported): this node
    // is not built, and neither are its users.
    if (missing) {
      assert(errors && "a value is missing without an error");
      continue;
    }
    SmallVector<NamedAttribute> attrs;
    for (const onnx::AttributeProto &a : node.attribute()) {
      FailureOr<NamedAttribute> attr = attribute(a, loc);
      if (succeeded(attr))
        attrs.push_back(*attr);
    }
    SmallVector<Type> types;
    for (const std::string &out : node.output()) {
      Type t = inferredTypes.lookup(out);
      types.push_back(t ? t : UnrankedTensorType::get(builder.getF32Type()));
    }
    std::string domain = canonicalDomain(node.domain());
    auto it = opsets.find(domain);
    if (it == opsets.end()) {
      error(loc) << "node '" << node.name() << "' (" << node.op_type()
                 << ") uses domain '" << domain
                 << "', which the model does not import";
      continue;
    }
    auto op = onnxir::NodeOp::create(
        builder, loc, types, builder.getStringAttr(node.op_type()),
        builder.getStringAttr(domain), builder.getI64IntegerAttr(it->second),
        builder.getDictionaryAttr(attrs), operands);
    for (auto [i, out] : llvm::enumerate(node.output()))
      if (!out.empty())
        values[out] = op.getResult(i);
  }
  if (errors)
    return failure();

  SmallVector<Value> results;
  for (const onnx::ValueInfoProto &out : graph.output()) {
    Value v = values.lookup(out.name());
    if (!v) {
      error(fileLoc()) << "graph output '" << out.name()
                                  << "' is not computed by the graph";
      continue;
    }
    Type want = resultTypes[results.size()];
    if (v.getType() != want) {
      // A graph input or initializer returned with another declared shape.
      if (!tensor::CastOp::areCastCompatible(v.getType(), want)) {
        error(fileLoc())
            << "graph output '" << out.name() << "' is declared " << want
            << " but its value is " << v.getType();
        continue;
      }
      v = tensor::CastOp::create(builder, fileLoc(), want, v);
    }
    results.push_back(v);
  }
  if (errors)
    return failure();
  func::ReturnOp::create(builder, fileLoc(), results);
  return success();
}

OwningOpRef<ModuleOp> OnnxImporter::run(const llvm::MemoryBuffer &buffer) {
  if (buffer.getBufferSize() > static_cast<size_t>(INT32_MAX)) {
    error(fileLoc()) << "the model file is larger than 2 GiB; store the "
                        "weights as external data";
    return nullptr;
  }
  if (!model.ParseFromArray(buffer.getBufferStart(),
                            static_cast<int>(buffer.getBufferSize()))) {
    error(fileLoc()) << "not a valid ONNX model: the protobuf does not parse "
                        "(truncated or corrupt file?)";
    return nullptr;
  }
  if (!model.has_graph()) {
    error(fileLoc()) << "not a valid ONNX model: no graph";
    return nullptr;
  }
  if (failed(checkOpsets()))
    return nullptr;
  for (const onnx::FunctionProto &f : model.functions()) {
    auto [it, inserted] =
        functions.try_emplace(canonicalDomain(f.domain()) + ":" + f.name(), &f);
    if (!inserted) {
      error(fileLoc()) << "model-local function '" << f.domain() << "."
                       << f.name() << "' is defined twice";
      return nullptr;
    }
  }
  if (failed(checkFunctionCalls()))
    return nullptr;

  // Shape inference only provides type hints for stage-1 results.
  if (safeForShapeInference()) try {
      guardConvPoolInference();
      onnx::ModelProto inferred = model;
      onnx::shape_inference::InferShapes(inferred);
      for (const onnx::ValueInfoProto &vi : inferred.graph().value_info()) {
        if (!vi.type().has_tensor_type() ||
            !vi.type().tensor_type().has_shape())
          continue;
        unsigned before = errors;
        FailureOr<RankedTensorType> t = valueType(vi, fileLoc(), nullptr);
        errors = before; // hints only: an odd inferred type is not an error
        if (succeeded(t))
          inferredTypes[vi.name()] = *t;
    }
  } catch (const std::exception &) {
    // No hints: stage 2 computes every result type itself.
  }

  ctx->loadDialect<arith::ArithDialect, func::FuncDialect,
                   onnxir::OnnxDialect, tensor::TensorDialect>();
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc());
  (*module)->setAttr("onnx.producer",
                     builder.getStringAttr(model.producer_name()));
  if (failed(importGraph(*module)))
    return nullptr;
  return module;
}

OwningOpRef<ModuleOp> mlir::moe::importOnnxModel(
    const llvm::MemoryBuffer &buffer, StringRef fileName, StringRef baseDir,
    MLIRContext *context) {
  try {
    OnnxImporter importer(context, fileName, baseDir);
    return importer.run(buffer);
  } catch (const std::exception &e) {
    emitError(FileLineColLoc::get(context, fileName, 0, 0))
        << "ONNX import failed: " << e.what();
    return nullptr;
  }
}

void mlir::moe::printOnnxDiagnostic(Diagnostic &diag, llvm::raw_ostream &os,
                                    StringRef tool) {
  auto print = [&](Diagnostic &d, StringRef severity) {
    std::string file, node;
    Location loc = d.getLocation();
    // The innermost name: the ONNX node (a decomposition's part names,
    // build::partLoc, are around it).
    while (auto name = dyn_cast<NameLoc>(loc)) {
      node = name.getName().str();
      loc = name.getChildLoc();
    }
    if (auto fileLoc = dyn_cast<FileLineColLoc>(loc))
      file = fileLoc.getFilename().str();
    std::string message = d.str();
    os << (file.empty() ? tool.str() : file) << ": ";
    if (!node.empty() &&
        message.find("node '" + node + "'") == std::string::npos)
      os << "node '" << node << "': ";
    os << severity << ": " << message << "\n";
  };
  auto severity = [](DiagnosticSeverity s) -> StringRef {
    switch (s) {
    case DiagnosticSeverity::Error:
      return "error";
    case DiagnosticSeverity::Warning:
      return "warning";
    case DiagnosticSeverity::Note:
      return "note";
    case DiagnosticSeverity::Remark:
      return "remark";
    }
    return "error";
  };
  print(diag, severity(diag.getSeverity()));
  for (Diagnostic &note : diag.getNotes())
    print(note, "note");
}

std::optional<SchemaTypeMismatch>
mlir::moe::findSchemaTypeMismatch(StringRef opType, int64_t opsetVersion,
                                  ArrayRef<std::string> inputTypes) {
  try {
    static const int known = [] {
      const auto &map =
          onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
      auto it = map.find(onnx::ONNX_DOMAIN);
      return it == map.end() ? 0 : it->second.second;
    }();
    if (opsetVersion > known)
      return std::nullopt;
    const onnx::OpSchema *schema = onnx::OpSchemaRegistry::Schema(
        opType.str(), static_cast<int>(opsetVersion));
    if (!schema || schema->inputs().empty())
      return std::nullopt;
    const auto &formals = schema->inputs();
    for (auto [i, type] : llvm::enumerate(inputTypes)) {
      if (i >= formals.size() &&
          formals.back().GetOption() != onnx::OpSchema::Variadic)
        break;
      if (type.empty())
        continue;
      const onnx::OpSchema::FormalParameter &formal =
          formals[std::min<size_t>(i, formals.size() - 1)];
      const auto &allowed = formal.GetTypes();
      if (allowed.empty() ||
          allowed.count(onnx::Utils::DataTypeUtils::ToType(type)))
        continue;
      SchemaTypeMismatch bad{static_cast<unsigned>(i),
                             formal.GetName(),
                             schema->SinceVersion(),
                             {}};
      for (onnx::DataType t : allowed)
        bad.allowed.push_back(*t);
      std::sort(bad.allowed.begin(), bad.allowed.end());
      return bad;
    }
  } catch (...) {
    // An unknown type string or a registry error: nothing to report.
  }
  return std::nullopt;
}
