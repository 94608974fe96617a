//===- runtime_module.cpp - moe_mlir._runtime: the runtime for Python -----===//
//
// Binds the runtime's C API (runtime/include/moe_runtime.h) and nothing
// else: importing it loads libmoe_runtime.so, never LLVM or MLIR. The
// Python side (moe_mlir/_session.py) makes the arguments right (C-contiguous,
// aligned, native byte order) and shapes the results like onnxruntime.
//
// Inputs are passed without a copy (moe_tensor_create_view over the numpy
// buffer); outputs are numpy arrays over the runtime's tensors, whose base is
// a capsule that calls moe_tensor_release. The GIL is released while a
// session loads and while it runs. Statuses become the exceptions of
// moe_mlir._errors, with the runtime's message.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

/// moe_mlir._errors._status_error, looked up once (never released: it
/// lives as long as the interpreter).
PyObject *gStatusError = nullptr;

struct StatusDeleter {
  void operator()(moe_status *s) const { moe_status_release(s); }
};
using StatusPtr = std::unique_ptr<moe_status, StatusDeleter>;

struct TensorDeleter {
  void operator()(moe_tensor *t) const { moe_tensor_release(t); }
};
using TensorPtr = std::unique_ptr<moe_tensor, TensorDeleter>;

/// Raises the moe_mlir exception for `status` (which must not be null) and
/// releases it. Needs the GIL.
[[noreturn]] void raiseStatus(moe_status_t status) {
  StatusPtr owned(status);
  int code = static_cast<int>(moe_status_code(status));
  py::str message(moe_status_message(status));
  py::object exc =
      py::reinterpret_borrow<py::object>(gStatusError)(code, message);
  PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exc.ptr())),
                  exc.ptr());
  throw py::error_already_set();
}

/// Raises moe_mlir.InvalidArgument with `message` (a check of this module,
/// not the runtime's).
[[noreturn]] void raiseInvalid(const std::string &message) {
  py::object exc = py::reinterpret_borrow<py::object>(gStatusError)(
      static_cast<int>(MOE_INVALID_ARGUMENT), py::str(message));
  PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exc.ptr())),
                  exc.ptr());
  throw py::error_already_set();
}

/// The runtime's dtype of a numpy dtype, or false when it has none.
bool toMoeDType(const py::dtype &dt, moe_dtype_t &out) {
  char kind = dt.kind();
  py::ssize_t size = dt.itemsize();
  switch (kind) {
  case 'b':
    out = MOE_DTYPE_BOOL;
    return size == 1;
  case 'f':
    if (size == 2)
      out = MOE_DTYPE_F16;
    else if (size == 4)
      out = MOE_DTYPE_F32;
    else if (size == 8)
      out = MOE_DTYPE_F64;
    else
      return false;
    return true;
  case 'i':
    if (size == 1)
      out = MOE_DTYPE_I8;
    else if (size == 2)
      out = MOE_DTYPE_I16;
    else if (size == 4)
      out = MOE_DTYPE_I32;
    else if (size == 8)
      out = MOE_DTYPE_I64;
    else
      return false;
    return true;
  case 'u':
    if (size == 1)
      out = MOE_DTYPE_U8;
    else if (size == 2)
      out = MOE_DTYPE_U16;
    else if (size == 4)
      out = MOE_DTYPE_U32;
    else if (size == 8)
      out = MOE_DTYPE_U64;
    else
      return false;
    return true;
  default:
    // ml_dtypes.bfloat16 (kind 'V').
    if (size == 2 && py::str(dt.attr("name")).cast<std::string>() ==
                         "bfloat16") {
      out = MOE_DTYPE_BF16;
      return true;
    }
    return false;
  }
}

/// The numpy dtype of a runtime dtype: bfloat16 is ml_dtypes.bfloat16 when
/// ml_dtypes is installed, otherwise uint16 (the bit patterns).
py::dtype toNumpyDType(moe_dtype_t dtype) {
  switch (dtype) {
  case MOE_DTYPE_F32:
    return py::dtype("float32");
  case MOE_DTYPE_F64:
    return py::dtype("float64");
  case MOE_DTYPE_F16:
    return py::dtype("float16");
  case MOE_DTYPE_BF16:
    try {
      return py::dtype::from_args(
          py::module_::import("ml_dtypes").attr("bfloat16"));
    } catch (py::error_already_set &) {
      return py::dtype("uint16");
    }
  case MOE_DTYPE_I64:
    return py::dtype("int64");
  case MOE_DTYPE_I32:
    return py::dtype("int32");
  case MOE_DTYPE_I8:
    return py::dtype("int8");
  case MOE_DTYPE_U8:
    return py::dtype("uint8");
  case MOE_DTYPE_BOOL:
    return py::dtype("bool");
  case MOE_DTYPE_I16:
    return py::dtype("int16");
  case MOE_DTYPE_U16:
    return py::dtype("uint16");
  case MOE_DTYPE_U32:
    return py::dtype("uint32");
  case MOE_DTYPE_U64:
    return py::dtype("uint64");
  }
  raiseInvalid("the runtime returned an unknown dtype " +
               std::to_string(static_cast<int>(dtype)));
}

/// A numpy array that owns `tensor`: its base is a capsule that releases
/// the tensor when the last array over it goes.
py::array wrapOutput(TensorPtr tensor) {
  moe_tensor *t = tensor.get();
  py::dtype dt = toNumpyDType(moe_tensor_dtype(t));
  size_t rank = moe_tensor_rank(t);
  const int64_t *dims = moe_tensor_dims(t);
  std::vector<py::ssize_t> shape(dims, dims + rank);
  if (moe_tensor_element_count(t) == 0)
    return py::array(dt, shape); // nothing to share (data may be null)
  void *data = moe_tensor_data(t);
  py::capsule owner(tensor.release(), [](void *p) {
    moe_tensor_release(static_cast<moe_tensor *>(p));
  });
  return py::array(dt, shape, data, owner);
}

/// The process's runtime instance: created on first use and never released
/// (sessions may outlive any Python object that could own it).
moe_instance *instance() {
  static moe_instance *inst = [] {
    moe_instance *p = nullptr;
    if (moe_status_t st = moe_instance_create(&p))
      raiseStatus(st);
    return p;
  }();
  return inst;
}

/// One tensor of a signature: (name, dtype code, dims), a dim being an int
/// when static, the symbol (str) when symbolic, None when anonymous.
using Spec = std::tuple<std::string, int, py::list>;

class Session {
public:
  Session(const std::string &path, std::optional<int64_t> threads,
          bool mapWeights, bool profile) {
    moe_instance *inst = instance();
    moe_session_options *raw = nullptr;
    if (moe_status_t st = moe_session_options_create(&raw))
      raiseStatus(st);
    std::unique_ptr<moe_session_options, void (*)(moe_session_options *)>
        options(raw, moe_session_options_release);
    if (threads)
      if (moe_status_t st =
              moe_session_options_set_threads(options.get(), *threads))
        raiseStatus(st);
    if (mapWeights)
      if (moe_status_t st = moe_session_options_set_weight_memory(
              options.get(), MOE_WEIGHTS_MAPPED))
        raiseStatus(st);
    if (profile)
      if (moe_status_t st = moe_session_options_set_profile(options.get(), 1))
        raiseStatus(st);
    moe_status_t st;
    {
      py::gil_scoped_release release;
      st = moe_session_create_with_options(inst, path.c_str(), options.get(),
                                           &session_);
    }
    if (st)
      raiseStatus(st);
  }
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;
  ~Session() { moe_session_release(session_); }

  size_t threads() const { return moe_session_thread_count(session_); }

  /// (runs, run nanoseconds, [(name, calls, split calls, iterations,
  /// nanoseconds)] by time): moe_session_profile.
  py::tuple profile() const {
    uint64_t runs = 0, runNs = 0;
    const moe_profile_loop *loops = nullptr;
    size_t count = 0;
    if (moe_status_t st =
            moe_session_profile(session_, &runs, &runNs, &loops, &count))
      raiseStatus(st);
    py::list out;
    for (size_t i = 0; i < count; ++i) {
      // (Compiled names are ASCII; other bytes of a hand-made artifact
      // come back escaped rather than raising.)
      std::string name = loops[i].name;
      PyObject *text = PyUnicode_DecodeUTF8(
          name.data(), static_cast<Py_ssize_t>(name.size()),
          "backslashreplace");
      if (!text)
        throw py::error_already_set();
      out.append(py::make_tuple(py::reinterpret_steal<py::str>(text),
                                loops[i].calls, loops[i].split_calls,
                                loops[i].iterations, loops[i].nanoseconds));
    }
    return py::make_tuple(runs, runNs, out);
  }
  void resetProfile() const { moe_session_profile_reset(session_); }

  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (size_t i = 0, e = moe_session_entry_count(session_); i < e; ++i)
      names.emplace_back(moe_session_entry_name(session_, i));
    return names;
  }

  /// The index of entry `entry`; NotFound if the artifact has none.
  size_t entryIndex(const std::string &entry) const {
    size_t e = moe_session_entry_index(session_, entry.c_str());
    // The runtime's own NotFound status names the entry.
    if (e == moe_session_entry_count(session_))
      raiseStatus(moe_session_run_entry(session_, entry.c_str(), 0, nullptr,
                                        nullptr, 0, nullptr));
    return e;
  }

  std::vector<Spec> inputs(const std::string &entry) const {
    return specs(entryIndex(entry), moe_session_entry_input_count,
                 moe_session_entry_input_name, moe_session_entry_input_dtype,
                 moe_session_entry_input_rank, moe_session_entry_input_dim,
                 moe_session_entry_input_dim_name);
  }

  std::vector<Spec> outputs(const std::string &entry) const {
    return specs(entryIndex(entry), moe_session_entry_output_count,
                 moe_session_entry_output_name, moe_session_entry_output_dtype,
                 moe_session_entry_output_rank, moe_session_entry_output_dim,
                 moe_session_entry_output_dim_name);
  }

  /// Runs entry `entry` on `arrays` (numpy arrays, C-contiguous, aligned,
  /// native byte order: moe_mlir/_session.py sees to it) named `names`; the
  /// outputs in signature order.
  py::list run(const std::vector<std::string> &names, const py::list &arrays,
               const std::string &entry) {
    size_t e = entryIndex(entry);
    if (names.size() != arrays.size())
      raiseInvalid("run: " + std::to_string(names.size()) + " names for " +
                   std::to_string(arrays.size()) + " arrays");
    std::vector<py::array> keep; // the buffers stay alive while the code runs
    std::vector<TensorPtr> views;
    std::vector<const char *> namePtrs;
    std::vector<const moe_tensor *> inputs;
    for (size_t i = 0; i < names.size(); ++i) {
      py::handle obj = arrays[i];
      if (!py::isinstance<py::array>(obj))
        raiseInvalid("input '" + names[i] + "' is not a numpy array");
      auto a = py::reinterpret_borrow<py::array>(obj);
      int flags = a.flags();
      if (!(flags & py::array::c_style) || !(flags & 0x0100 /*ALIGNED*/) ||
          !a.dtype().attr("isnative").cast<bool>())
        raiseInvalid("input '" + names[i] +
                     "' must be C-contiguous, aligned and in native byte "
                     "order");
      moe_dtype_t dtype;
      if (!toMoeDType(a.dtype(), dtype))
        raiseInvalid("input '" + names[i] + "' has numpy dtype " +
                     py::str(a.dtype()).cast<std::string>() +
                     ", which the runtime does not support");
      std::vector<int64_t> dims(a.shape(), a.shape() + a.ndim());
      moe_tensor *view = nullptr;
      // The runtime reads inputs only: a read-only array is fine.
      if (moe_status_t st = moe_tensor_create_view(
              dtype, dims.size(), dims.data(), const_cast<void *>(a.data()),
              &view))
        raiseStatus(st);
      views.emplace_back(view);
      inputs.push_back(view);
      namePtrs.push_back(names[i].c_str());
      keep.push_back(std::move(a));
    }
    size_t numOutputs = moe_session_entry_output_count(session_, e);
    std::vector<moe_tensor *> outputs(numOutputs, nullptr);
    moe_status_t st;
    {
      py::gil_scoped_release release;
      st = moe_session_run_entry(session_, entry.c_str(), inputs.size(),
                                 namePtrs.data(), inputs.data(), numOutputs,
                                 outputs.data());
    }
    if (st)
      raiseStatus(st);
    std::vector<TensorPtr> owned;
    owned.reserve(numOutputs);
    for (moe_tensor *t : outputs)
      owned.emplace_back(t);
    py::list result;
    for (TensorPtr &t : owned)
      result.append(wrapOutput(std::move(t)));
    return result;
  }

  moe_session *get() const { return session_; }

private:
  /// The inputs or outputs of entry `e`, read with the C accessors of one
  /// kind.
  std::vector<Spec>
  specs(size_t e, size_t (*count)(const moe_session *, size_t),
        const char *(*name)(const moe_session *, size_t, size_t),
        moe_dtype_t (*dtype)(const moe_session *, size_t, size_t),
        size_t (*rank)(const moe_session *, size_t, size_t),
        int64_t (*dimAt)(const moe_session *, size_t, size_t, size_t),
        const char *(*dimName)(const moe_session *, size_t, size_t,
                               size_t)) const {
    std::vector<Spec> out;
    for (size_t i = 0, n = count(session_, e); i < n; ++i) {
      py::list dims;
      for (size_t d = 0, r = rank(session_, e, i); d < r; ++d)
        dims.append(dim(dimAt(session_, e, i, d), dimName(session_, e, i, d)));
      out.emplace_back(name(session_, e, i),
                       static_cast<int>(dtype(session_, e, i)), dims);
    }
    return out;
  }

  static py::object dim(int64_t value, const char *symbol) {
    if (value >= 0)
      return py::int_(value);
    if (symbol && *symbol)
      return py::str(symbol);
    return py::none();
  }

  moe_session *session_ = nullptr;
};

/// A generation context (moe_generation_*) on a Session, which it keeps
/// alive (py::keep_alive in the binding).
class Generation {
public:
  Generation(const Session &session, int64_t batch, int64_t maxLength) {
    if (moe_status_t st = moe_generation_create(session.get(), batch,
                                                maxLength, &generation_))
      raiseStatus(st);
  }
  Generation(const Generation &) = delete;
  Generation &operator=(const Generation &) = delete;
  ~Generation() { moe_generation_release(generation_); }

  /// The logits of the next tokens (an int64 C-contiguous array [B, T]).
  py::array step(const py::array &tokens) {
    moe_dtype_t dtype;
    int flags = tokens.flags();
    if (!toMoeDType(tokens.dtype(), dtype) || dtype != MOE_DTYPE_I64 ||
        !(flags & py::array::c_style) || !(flags & 0x0100 /*ALIGNED*/) ||
        !tokens.dtype().attr("isnative").cast<bool>())
      raiseInvalid("tokens must be a C-contiguous native int64 array");
    std::vector<int64_t> dims(tokens.shape(), tokens.shape() + tokens.ndim());
    moe_tensor *view = nullptr;
    if (moe_status_t st = moe_tensor_create_view(
            dtype, dims.size(), dims.data(), const_cast<void *>(tokens.data()),
            &view))
      raiseStatus(st);
    TensorPtr keep(view);
    moe_tensor *logits = nullptr;
    moe_status_t st;
    {
      py::gil_scoped_release release;
      st = moe_generation_step(generation_, view, &logits);
    }
    if (st)
      raiseStatus(st);
    return wrapOutput(TensorPtr(logits));
  }
  int64_t position() const { return moe_generation_position(generation_); }
  void reset() { moe_generation_reset(generation_); }

private:
  moe_generation *generation_ = nullptr;
};

} // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "The moe-mlir runtime (libmoe_runtime): load and run .moeb "
            "artifacts. Use moe_mlir.InferenceSession.";
  gStatusError =
      py::object(py::module_::import("moe_mlir._errors").attr("_status_error"))
          .release()
          .ptr();
  m.attr("MAX_THREADS") = MOE_MAX_THREADS;
  m.attr("MAX_SYMBOLIC_DIM") = MOE_MAX_SYMBOLIC_DIM;

  m.def(
      "dtype_name",
      [](int dtype) {
        return std::string(moe_dtype_name(static_cast<moe_dtype_t>(dtype)));
      },
      "The runtime's name of a dtype code (\"f32\", ...).");
  m.def(
      "numpy_dtype",
      [](int dtype) { return toNumpyDType(static_cast<moe_dtype_t>(dtype)); },
      "The numpy dtype of a runtime dtype code.");

  py::class_<Session>(m, "Session")
      .def(py::init<const std::string &, std::optional<int64_t>, bool, bool>(),
           py::arg("path"), py::arg("threads") = py::none(),
           py::arg("map_weights") = false, py::arg("profile") = false)
      .def_property_readonly("threads", &Session::threads)
      .def("profile", &Session::profile)
      .def("reset_profile", &Session::resetProfile)
      .def("entries", &Session::entries)
      .def("inputs", &Session::inputs, py::arg("entry") = "main")
      .def("outputs", &Session::outputs, py::arg("entry") = "main")
      .def("run", &Session::run, py::arg("names"), py::arg("arrays"),
           py::arg("entry") = "main");

  py::class_<Generation>(m, "Generation")
      .def(py::init<const Session &, int64_t, int64_t>(), py::arg("session"),
           py::arg("batch"), py::arg("max_length"),
           py::keep_alive<1, 2>())
      .def("step", &Generation::step, py::arg("tokens"))
      .def_property_readonly("position", &Generation::position)
      .def("reset", &Generation::reset);
}
