//===- moe_runtime.hpp - thin C++ RAII wrapper over moe_runtime.h -*- C++ -*-=//
//
// Owning handles with the C API's semantics; no exceptions: operations that
// can fail return a moe::Status (which owns its moe_status_t).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_HPP
#define MOE_RUNTIME_HPP

#include "moe_runtime.h"

#include <memory>
#include <string>
#include <vector>

namespace moe {

/// An owned status; ok() when the C call returned NULL.
class Status {
public:
  Status() = default;
  explicit Status(moe_status_t s) : status(s, moe_status_release) {}
  bool ok() const { return !status; }
  moe_status_code_t code() const { return moe_status_code(status.get()); }
  std::string message() const { return moe_status_message(status.get()); }

private:
  std::unique_ptr<moe_status, void (*)(moe_status *)> status{
      nullptr, moe_status_release};
};

/// An owned tensor.
class Tensor {
public:
  Tensor() = default;
  explicit Tensor(moe_tensor *t) : tensor(t, moe_tensor_release) {}
  static Status create(moe_dtype_t dtype, const std::vector<int64_t> &dims,
                       const void *data, Tensor &out) {
    moe_tensor *t = nullptr;
    Status s(moe_tensor_create(dtype, dims.size(), dims.data(), data, &t));
    if (s.ok())
      out = Tensor(t);
    return s;
  }
  /// A tensor that borrows `data` (moe_tensor_create_view: not copied; it
  /// must outlive the tensor and stay unchanged while a run reads it).
  static Status view(moe_dtype_t dtype, const std::vector<int64_t> &dims,
                     void *data, Tensor &out) {
    moe_tensor *t = nullptr;
    Status s(moe_tensor_create_view(dtype, dims.size(), dims.data(), data, &t));
    if (s.ok())
      out = Tensor(t);
    return s;
  }
  moe_tensor *get() const { return tensor.get(); }
  moe_dtype_t dtype() const { return moe_tensor_dtype(get()); }
  std::vector<int64_t> dims() const {
    const int64_t *d = moe_tensor_dims(get());
    return std::vector<int64_t>(d, d + moe_tensor_rank(get()));
  }
  size_t elementCount() const { return moe_tensor_element_count(get()); }
  size_t byteSize() const { return moe_tensor_byte_size(get()); }
  template <typename T> T *data() const {
    return static_cast<T *>(moe_tensor_data(get()));
  }

private:
  std::unique_ptr<moe_tensor, void (*)(moe_tensor *)> tensor{
      nullptr, moe_tensor_release};
};

/// An owned instance.
class Instance {
public:
  static Status create(Instance &out) {
    moe_instance *i = nullptr;
    Status s(moe_instance_create(&i));
    if (s.ok())
      out.instance.reset(i);
    return s;
  }
  moe_instance *get() const { return instance.get(); }

private:
  std::unique_ptr<moe_instance, void (*)(moe_instance *)> instance{
      nullptr, moe_instance_release};
};

/// Owned session options (moe_session_options_*).
class SessionOptions {
public:
  static Status create(SessionOptions &out) {
    moe_session_options *o = nullptr;
    Status s(moe_session_options_create(&o));
    if (s.ok())
      out.options.reset(o);
    return s;
  }
  /// Threads of the session's pool, the calling thread included
  /// (1 to MOE_MAX_THREADS).
  Status setThreads(int64_t threads) {
    return Status(moe_session_options_set_threads(get(), threads));
  }
  /// Where the session keeps the artifact (MOE_WEIGHTS_COPIED, the
  /// default, or MOE_WEIGHTS_MAPPED).
  Status setWeightMemory(moe_weight_memory_t memory) {
    return Status(moe_session_options_set_weight_memory(get(), memory));
  }
  /// Whether the session profiles its runs (moe_session_profile).
  Status setProfile(bool enabled) {
    return Status(moe_session_options_set_profile(get(), enabled ? 1 : 0));
  }
  moe_session_options *get() const { return options.get(); }

private:
  std::unique_ptr<moe_session_options, void (*)(moe_session_options *)>
      options{nullptr, moe_session_options_release};
};

/// An owned session; the instance must outlive it.
class Session {
public:
  static Status load(const Instance &instance, const std::string &path,
                     Session &out) {
    moe_session *s = nullptr;
    Status st(moe_session_create(instance.get(), path.c_str(), &s));
    if (st.ok())
      out.session.reset(s);
    return st;
  }
  /// Loads with `options` (a default-constructed SessionOptions: the
  /// defaults).
  static Status load(const Instance &instance, const std::string &path,
                     const SessionOptions &options, Session &out) {
    moe_session *s = nullptr;
    Status st(moe_session_create_with_options(instance.get(), path.c_str(),
                                              options.get(), &s));
    if (st.ok())
      out.session.reset(s);
    return st;
  }
  moe_session *get() const { return session.get(); }
  size_t threadCount() const { return moe_session_thread_count(get()); }
  /// The profile of a session created with SessionOptions::setProfile
  /// (moe_session_profile): `loops` receives copies (their names valid
  /// until the next profile() or resetProfile(), or the session's end).
  Status profile(uint64_t &runs, uint64_t &runNs,
                 std::vector<moe_profile_loop> &loops) const {
    const moe_profile_loop *data = nullptr;
    size_t count = 0;
    Status st(moe_session_profile(get(), &runs, &runNs, &data, &count));
    loops.assign(data, data + count);
    return st;
  }
  void resetProfile() const { moe_session_profile_reset(get()); }
  size_t entryCount() const { return moe_session_entry_count(get()); }
  std::string entryName(size_t i) const {
    return moe_session_entry_name(get(), i);
  }
  size_t inputCount() const { return moe_session_input_count(get()); }
  size_t outputCount() const { return moe_session_output_count(get()); }
  std::string inputName(size_t i) const {
    return moe_session_input_name(get(), i);
  }
  std::string outputName(size_t i) const {
    return moe_session_output_name(get(), i);
  }
  /// The index of entry `name`, entryCount() if there is none.
  size_t entryIndex(const std::string &name) const {
    return moe_session_entry_index(get(), name.c_str());
  }
  size_t entryInputCount(size_t e) const {
    return moe_session_entry_input_count(get(), e);
  }
  size_t entryOutputCount(size_t e) const {
    return moe_session_entry_output_count(get(), e);
  }
  std::string entryInputName(size_t e, size_t i) const {
    return moe_session_entry_input_name(get(), e, i);
  }
  std::string entryOutputName(size_t e, size_t i) const {
    return moe_session_entry_output_name(get(), e, i);
  }
  /// Runs "main" with named inputs; `outputs` receives the outputs in
  /// signature order.
  Status run(const std::vector<std::string> &names,
             const std::vector<const Tensor *> &inputs,
             std::vector<Tensor> &outputs) const {
    return runEntry("main", names, inputs, outputs);
  }
  /// Runs entry `entry` the same way.
  Status runEntry(const std::string &entry,
                  const std::vector<std::string> &names,
                  const std::vector<const Tensor *> &inputs,
                  std::vector<Tensor> &outputs) const {
    std::vector<const char *> cnames;
    std::vector<const moe_tensor *> cinputs;
    for (const std::string &n : names)
      cnames.push_back(n.c_str());
    for (const Tensor *t : inputs)
      cinputs.push_back(t ? t->get() : nullptr);
    std::vector<moe_tensor *> raw(entryOutputCount(entryIndex(entry)),
                                  nullptr);
    Status s(moe_session_run_entry(get(), entry.c_str(), cinputs.size(),
                                   cnames.data(), cinputs.data(), raw.size(),
                                   raw.data()));
    if (s.ok()) {
      outputs.clear();
      for (moe_tensor *t : raw)
        outputs.emplace_back(t);
    }
    return s;
  }

private:
  std::unique_ptr<moe_session, void (*)(moe_session *)> session{
      nullptr, moe_session_release};
};

/// A generation context (moe_generation_*): the key/value caches of
/// `batch` sequences of up to `maxLength` positions on a session.
class Generation {
public:
  static Status create(const Session &session, int64_t batch,
                       int64_t maxLength, Generation &out) {
    moe_generation *g = nullptr;
    Status st(moe_generation_create(session.get(), batch, maxLength, &g));
    if (st.ok())
      out.generation.reset(g);
    return st;
  }
  /// The logits of the next tokens [batch, T]: [batch, T, V], or the last
  /// position's [batch, 1, V] from a prefill (moe_generation_step).
  Status step(const Tensor &tokens, Tensor &logits) {
    moe_tensor *raw = nullptr;
    Status st(moe_generation_step(generation.get(), tokens.get(), &raw));
    if (st.ok())
      logits = Tensor(raw);
    return st;
  }
  int64_t position() const { return moe_generation_position(generation.get()); }
  void reset() { moe_generation_reset(generation.get()); }

private:
  std::unique_ptr<moe_generation, void (*)(moe_generation *)> generation{
      nullptr, moe_generation_release};
};

} // namespace moe

#endif // MOE_RUNTIME_HPP
