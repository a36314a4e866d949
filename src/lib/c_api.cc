// The C API (include/ckpt/ckpt.h) on top of ckpt::Session. Every entry point
// checks its arguments and turns a refusal into a negative code (the reason
// in ckpt_last_error); no C++ exception crosses into C.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "ckpt/ckpt.h"
#include "ckpt/ckpt.hpp"

namespace ckpt::detail {

// A C array of arithmetic elements of a fixed count.
template <typename T>
class CArrayVar final : public VarBase {
 public:
  CArrayVar(T* p, std::size_t n) : p_(p), n_(n) {}
  TypeDesc Describe() const override {
    TypeDesc d = Node(TypeDesc::Kind::kArray, "array", {Traits<T>::Describe()});
    d.count = n_;
    return d;
  }
  void Save(Writer& w) const override { SaveArray(w, p_, n_); }
  void Load(Reader& r, const TypeDesc& img) override { LoadArray(r, p_, n_, img.args.at(0)); }

 private:
  T* p_;
  std::size_t n_;
};

struct CApi {
  static int Register(Session* s, const char* name, std::unique_ptr<VarBase> v) {
    switch (s->TryRegister(name, std::move(v))) {
      case Refusal::kNone:
        return CKPT_OK;
      case Refusal::kInvalid:
        return CKPT_ERR_INVALID;
      case Refusal::kDuplicate:
        return CKPT_ERR_DUPLICATE;
      case Refusal::kLate:
        return CKPT_ERR_LATE;
    }
    return CKPT_ERR_INTERNAL;
  }
  static bool StageEnter(Session* s, const char* name) { return s->StageEnter(name); }
  static bool StageLeave(Session* s) { return s->StageLeave(true); }
  static void SetLastError(Session* s, std::string why) { s->SetLastError(std::move(why)); }
};

}  // namespace ckpt::detail

struct ckpt_session {
  ckpt::Session session;
  ckpt_session(int& argc, char** argv, ckpt::Options defaults) : session(argc, argv, std::move(defaults)) {}
};

namespace {

const char kNullSession[] = "the ckpt_session is NULL (ckpt_open failed or was not called)";
thread_local std::string g_open_error;  // ckpt_open_error()

int ToC(ckpt::Event e) {
  switch (e) {
    case ckpt::Event::kNone:
      return CKPT_NONE;
    case ckpt::Event::kCheckpointed:
      return CKPT_CHECKPOINTED;
    case ckpt::Event::kResumed:
      return CKPT_RESUMED;
    case ckpt::Event::kFailed:
      return CKPT_FAILED;
  }
  return CKPT_NONE;
}

// A refusal found by the C layer itself, reported through ckpt_last_error.
int Refuse(ckpt_session* s, int code, std::string why) {
  ckpt::detail::CApi::SetLastError(&s->session, std::move(why));
  return code;
}

template <typename T>
int Register(ckpt_session* s, const char* name, void* data, std::size_t n) {
  if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
    return Refuse(s, CKPT_ERR_INVALID,
                  "ckpt_register('" + std::string(name) + "'): count " + std::to_string(n) + " is too large");
  }
  auto v = std::make_unique<ckpt::detail::CArrayVar<T>>(static_cast<T*>(data), n);
  return ckpt::detail::CApi::Register(&s->session, name, std::move(v));
}

// Runs `body`; a failed resume (CKPT_OPEN_RETURN_ERRORS) becomes
// CKPT_ERR_RESUME, another exception (out of memory, ...) CKPT_ERR_INTERNAL.
template <typename F>
int Guard(ckpt_session* s, F&& body) {
  try {
    return body();
  } catch (const ckpt::Error& e) {
    return Refuse(s, CKPT_ERR_RESUME, e.what());
  } catch (const std::exception& e) {
    return Refuse(s, CKPT_ERR_INTERNAL, e.what());
  } catch (...) {
    return Refuse(s, CKPT_ERR_INTERNAL, "unexpected failure");
  }
}

}  // namespace

extern "C" {

ckpt_session* ckpt_open(int* argc, char** argv) {
  return ckpt_open_flags(argc, argv, 0);
}

ckpt_session* ckpt_open_flags(int* argc, char** argv, unsigned flags) {
  const bool quiet = (flags & CKPT_OPEN_RETURN_ERRORS) != 0;
  auto fail = [&](std::string why) -> ckpt_session* {
    if (!quiet) (void)std::fprintf(stderr, "ckpt: error: ckpt_open: %s\n", why.c_str());
    g_open_error = std::move(why);
    return nullptr;
  };
  g_open_error.clear();
  if ((flags & ~CKPT_OPEN_RETURN_ERRORS) != 0) return fail("unknown flags " + std::to_string(flags));
  int none = 0;
  int& n = argc != nullptr ? *argc : none;
  if (n < 0 || (n > 0 && argv == nullptr))
    return fail("argc is " + std::to_string(n) + " but argv is " + (argv ? "not NULL" : "NULL"));
  for (int i = 0; i < n; ++i) {
    if (argv[i] == nullptr)
      return fail("argv[" + std::to_string(i) + "] is NULL but argc is " + std::to_string(n));
  }
  ckpt::Options defaults;
  defaults.throw_on_error = quiet;
  try {
    return new ckpt_session(n, n > 0 ? argv : nullptr, std::move(defaults));
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

const char* ckpt_open_error(void) {
  return g_open_error.c_str();
}

void ckpt_close(ckpt_session* s) {
  delete s;
}

int ckpt_register(ckpt_session* s, const char* name, ckpt_type type, void* data, size_t count) {
  if (s == nullptr) return CKPT_ERR_INVALID;
  if (name == nullptr || *name == '\0')
    return Refuse(s, CKPT_ERR_INVALID, "ckpt_register: the name is NULL or empty");
  if (data == nullptr && count > 0) {
    return Refuse(s, CKPT_ERR_INVALID,
                  "ckpt_register('" + std::string(name) + "'): data is NULL for " + std::to_string(count) +
                      " element(s)");
  }
  // A C caller may pass any int: read it as one (a ckpt_type outside the
  // enumerators' range would be undefined behaviour in C++).
  std::underlying_type_t<ckpt_type> raw;
  std::memcpy(&raw, &type, sizeof raw);
  return Guard(s, [&]() -> int {
    switch (raw) {
      case CKPT_I8:
        return Register<std::int8_t>(s, name, data, count);
      case CKPT_U8:
        return Register<std::uint8_t>(s, name, data, count);
      case CKPT_I16:
        return Register<std::int16_t>(s, name, data, count);
      case CKPT_U16:
        return Register<std::uint16_t>(s, name, data, count);
      case CKPT_I32:
        return Register<std::int32_t>(s, name, data, count);
      case CKPT_U32:
        return Register<std::uint32_t>(s, name, data, count);
      case CKPT_I64:
        return Register<std::int64_t>(s, name, data, count);
      case CKPT_U64:
        return Register<std::uint64_t>(s, name, data, count);
      case CKPT_F32:
        return Register<float>(s, name, data, count);
      case CKPT_F64:
        return Register<double>(s, name, data, count);
      case CKPT_BOOL:
        return Register<bool>(s, name, data, count);
      case CKPT_CHAR:
        return Register<char>(s, name, data, count);
      case CKPT_LONG:
        return Register<long>(s, name, data, count);
      case CKPT_ULONG:
        return Register<unsigned long>(s, name, data, count);
      case CKPT_SIZE:
        return Register<std::size_t>(s, name, data, count);
    }
    return Refuse(s, CKPT_ERR_INVALID,
                  "ckpt_register('" + std::string(name) + "'): unknown type " +
                      std::to_string(static_cast<long long>(raw)));
  });
}

int ckpt_stage_begin(ckpt_session* s, const char* name) {
  if (s == nullptr) return CKPT_ERR_INVALID;
  if (name == nullptr || *name == '\0')
    return Refuse(s, CKPT_ERR_INVALID, "ckpt_stage_begin: the name is NULL or empty");
  return Guard(s, [&] { return ckpt::detail::CApi::StageEnter(&s->session, name) ? 1 : 0; });
}

int ckpt_stage_end(ckpt_session* s) {
  if (s == nullptr) return CKPT_ERR_INVALID;
  if (!ckpt::detail::CApi::StageLeave(&s->session))
    return Refuse(s, CKPT_ERR_INVALID, "ckpt_stage_end: no stage is open");
  return CKPT_OK;
}

int ckpt_safepoint(ckpt_session* s) {
  if (s == nullptr) return CKPT_ERR_INVALID;
  return Guard(s, [&] { return ToC(s->session.safepoint()); });
}

int ckpt_checkpoint(ckpt_session* s) {
  if (s == nullptr) return CKPT_ERR_INVALID;
  return Guard(s, [&] { return ToC(s->session.checkpoint()); });
}

int ckpt_request(ckpt_session* s, int exit_after) {
  if (s == nullptr) return CKPT_ERR_INVALID;
  s->session.request_checkpoint(exit_after != 0);
  return CKPT_OK;
}

int ckpt_resumed(const ckpt_session* s) {
  return s != nullptr && s->session.resumed() ? 1 : 0;
}

const char* ckpt_last_image(const ckpt_session* s) {
  return s != nullptr ? s->session.last_image().c_str() : "";
}

const char* ckpt_last_error(const ckpt_session* s) {
  if (s == nullptr) return kNullSession;
  return s->session.last_error().c_str();
}

}  // extern "C"
