// The C API (include/ckpt/ckpt.h) on top of ckpt::Session.
#include <cstring>
#include <new>

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
  static void Register(Session* s, const char* name, std::unique_ptr<VarBase> v) {
    s->Register(name, std::move(v));
  }
  static bool StageEnter(Session* s, const char* name) { return s->StageEnter(name); }
  static void StageLeave(Session* s) { s->StageLeave(true); }
};

}  // namespace ckpt::detail

struct ckpt_session {
  ckpt::Session session;
  ckpt_session(int& argc, char** argv) : session(argc, argv) {}
};

namespace {

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

template <typename T>
std::unique_ptr<ckpt::detail::VarBase> Make(void* data, std::size_t n) {
  return std::make_unique<ckpt::detail::CArrayVar<T>>(static_cast<T*>(data), n);
}

}  // namespace

extern "C" {

ckpt_session* ckpt_open(int* argc, char** argv) {
  int dummy = 0;
  return new ckpt_session(argc != nullptr ? *argc : dummy, argv);
}

void ckpt_close(ckpt_session* s) {
  delete s;
}

int ckpt_register(ckpt_session* s, const char* name, ckpt_type type, void* data, size_t count) {
  using namespace ckpt::detail;
  std::unique_ptr<VarBase> v;
  switch (type) {
    case CKPT_I8:
      v = Make<std::int8_t>(data, count);
      break;
    case CKPT_U8:
      v = Make<std::uint8_t>(data, count);
      break;
    case CKPT_I16:
      v = Make<std::int16_t>(data, count);
      break;
    case CKPT_U16:
      v = Make<std::uint16_t>(data, count);
      break;
    case CKPT_I32:
      v = Make<std::int32_t>(data, count);
      break;
    case CKPT_U32:
      v = Make<std::uint32_t>(data, count);
      break;
    case CKPT_I64:
      v = Make<std::int64_t>(data, count);
      break;
    case CKPT_U64:
      v = Make<std::uint64_t>(data, count);
      break;
    case CKPT_F32:
      v = Make<float>(data, count);
      break;
    case CKPT_F64:
      v = Make<double>(data, count);
      break;
    case CKPT_BOOL:
      v = Make<bool>(data, count);
      break;
    case CKPT_CHAR:
      v = Make<char>(data, count);
      break;
    case CKPT_LONG:
      v = Make<long>(data, count);
      break;
    case CKPT_ULONG:
      v = Make<unsigned long>(data, count);
      break;
    case CKPT_SIZE:
      v = Make<std::size_t>(data, count);
      break;
    default:
      return -1;
  }
  CApi::Register(&s->session, name, std::move(v));
  return 0;
}

int ckpt_stage_begin(ckpt_session* s, const char* name) {
  return ckpt::detail::CApi::StageEnter(&s->session, name) ? 1 : 0;
}
void ckpt_stage_end(ckpt_session* s) {
  ckpt::detail::CApi::StageLeave(&s->session);
}
int ckpt_safepoint(ckpt_session* s) {
  return ToC(s->session.safepoint());
}
int ckpt_checkpoint(ckpt_session* s) {
  return ToC(s->session.checkpoint());
}
void ckpt_request(ckpt_session* s, int exit_after) {
  s->session.request_checkpoint(exit_after != 0);
}
int ckpt_resumed(const ckpt_session* s) {
  return s->session.resumed() ? 1 : 0;
}
const char* ckpt_last_image(const ckpt_session* s) {
  return s->session.last_image().c_str();
}
const char* ckpt_last_error(const ckpt_session* s) {
  return s->session.last_error().c_str();
}

}  // extern "C"
