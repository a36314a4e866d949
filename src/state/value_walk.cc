#include "state/value_walk.h"

#include <cinttypes>
#include <cstdio>
#include <vector>

namespace ckpt::state {

namespace {

using K = TypeDesc::Kind;

void Append(std::string* out, std::size_t limit, const std::string& s) {
  if (out == nullptr) return;
  if (out->size() >= limit) return;
  if (out->size() + s.size() > limit) {
    out->append(s, 0, limit - out->size());
    out->append("...");
  } else {
    out->append(s);
  }
}

std::string Quote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      (void)std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

}  // namespace

void WalkValue(Reader& r, const TypeDesc& d, std::string* out, std::size_t limit, int depth) {
  if (!r.ok()) return;
  if (depth > 64) {
    r.Fail("value nests too deeply");
    return;
  }
  // Once the rendering is full, keep decoding (to validate) without rendering.
  std::string* o = (out != nullptr && out->size() < limit) ? out : nullptr;
  switch (d.kind) {
    case K::kBool: {
      std::uint8_t b = r.U8();
      if (b > 1) r.Fail("bool holds " + std::to_string(b));
      Append(o, limit, b ? "true" : "false");
      return;
    }
    case K::kChar: {
      char c = static_cast<char>(r.U8());
      Append(o, limit, Quote(std::string(1, c)));
      return;
    }
    case K::kInt:
    case K::kUInt:
    case K::kEnum:
    case K::kWChar: {
      const std::uint64_t raw = r.UIntOfWidth(d.width);
      if (!r.ok()) return;
      bool is_signed = d.kind == K::kInt || (d.kind == K::kEnum && d.name == "i");
      if (is_signed) {
        Append(o, limit, std::to_string(detail::SignExtend(raw, d.width)));
      } else {
        Append(o, limit, std::to_string(raw));
      }
      return;
    }
    case K::kFloat: {
      char b[40];
      if (d.width == 4) {
        float f = std::bit_cast<float>(r.Fixed<std::uint32_t>());
        (void)std::snprintf(b, sizeof b, "%.9g", static_cast<double>(f));
      } else if (d.width == 8) {
        double f = std::bit_cast<double>(r.Fixed<std::uint64_t>());
        (void)std::snprintf(b, sizeof b, "%.17g", f);
      } else {
        r.Fail("invalid float width");
        return;
      }
      Append(o, limit, b);
      return;
    }
    case K::kString:
    case K::kOpaque: {
      std::uint64_t n = r.Count(1);
      if (!r.ok()) return;
      std::string s;
      std::uint64_t keep = std::min<std::uint64_t>(n, 256);
      s.resize(static_cast<std::size_t>(keep));
      r.Bytes(s.data(), s.size());
      std::vector<char> skip(4096);
      for (std::uint64_t left = n - keep; left > 0 && r.ok();) {
        std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left, skip.size()));
        r.Bytes(skip.data(), k);
        left -= k;
      }
      if (d.kind == K::kOpaque && n <= keep && d.name.find("_distribution<") != std::string::npos)
        Append(o, limit, Quote(s));  // a distribution's parameters and cached values: short text
      else if (d.kind == K::kOpaque)
        Append(o, limit, "<" + std::to_string(n) + " bytes of state>");
      else
        Append(o, limit, Quote(s) + (n > keep ? "..." : ""));
      return;
    }
    case K::kMonostate:
      Append(o, limit, "monostate");
      return;
    case K::kSeq:
    case K::kSet:
    case K::kArray: {
      if (d.args.size() != 1) {
        r.Fail("malformed type");
        return;
      }
      std::uint64_t n = d.kind == K::kArray ? d.count : r.Count(detail::MinEncodedSize(d.args[0]));
      if (d.kind == K::kArray && n > 0 && detail::MinEncodedSize(d.args[0]) > 0 &&
          n > r.Remaining() / detail::MinEncodedSize(d.args[0])) {
        r.Fail("array does not fit in the data");
        return;
      }
      if (d.kind == K::kArray && detail::MinEncodedSize(d.args[0]) == 0 && n > (std::uint64_t{1} << 20)) {
        r.Fail("array of " + std::to_string(n) + " empty elements is too long");
        return;
      }
      Append(o, limit, "[");
      for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
        if (i) Append(o, limit, ", ");
        WalkValue(r, d.args[0], o, limit, depth + 1);
        if (o != nullptr && o->size() >= limit) o = nullptr;
      }
      Append(o, limit, "]");
      return;
    }
    case K::kMap: {
      if (d.args.size() != 2) {
        r.Fail("malformed type");
        return;
      }
      std::uint64_t n = r.Count(detail::MinEncodedSize(d.args[0]) + detail::MinEncodedSize(d.args[1]));
      Append(o, limit, "{");
      for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
        if (i) Append(o, limit, ", ");
        WalkValue(r, d.args[0], o, limit, depth + 1);
        Append(o, limit, ": ");
        WalkValue(r, d.args[1], o, limit, depth + 1);
        if (o != nullptr && o->size() >= limit) o = nullptr;
      }
      Append(o, limit, "}");
      return;
    }
    case K::kOptional: {
      if (d.args.size() != 1) {
        r.Fail("malformed type");
        return;
      }
      std::uint8_t has = r.U8();
      if (has > 1) r.Fail("optional flag holds " + std::to_string(has));
      if (has == 1)
        WalkValue(r, d.args[0], o, limit, depth + 1);
      else
        Append(o, limit, "nullopt");
      return;
    }
    case K::kVariant: {
      std::uint64_t idx = r.Varint();
      if (!r.ok()) return;
      if (idx >= d.args.size()) {
        r.Fail("variant index " + std::to_string(idx) + " out of range");
        return;
      }
      Append(o, limit, "#" + std::to_string(idx) + " ");
      WalkValue(r, d.args[static_cast<std::size_t>(idx)], o, limit, depth + 1);
      return;
    }
    case K::kPair:
    case K::kTuple:
    case K::kStruct: {
      Append(o, limit, d.kind == K::kStruct ? "{" : "(");
      for (std::size_t i = 0; i < d.args.size() && r.ok(); ++i) {
        if (i) Append(o, limit, ", ");
        if (d.kind == K::kStruct && i < d.fields.size()) Append(o, limit, d.fields[i] + ": ");
        WalkValue(r, d.args[i], o, limit, depth + 1);
      }
      Append(o, limit, d.kind == K::kStruct ? "}" : ")");
      return;
    }
  }
  r.Fail("unknown type kind");
}

}  // namespace ckpt::state

namespace ckpt::detail {

namespace {

// Reads through another reader and keeps a copy of every byte. It holds no
// buffer of its own, so every read reaches Underflow.
class TeeReader final : public Reader {
 public:
  TeeReader(Reader& in, std::string* copy) : in_(in), copy_(copy) {}
  std::uint64_t Remaining() const override { return in_.Remaining(); }

 protected:
  bool Underflow(void* p, std::size_t n) override {
    if (!in_.Bytes(p, n)) {
      Fail(in_.error());
      return false;
    }
    copy_->append(static_cast<const char*>(p), n);
    return true;
  }

 private:
  Reader& in_;
  std::string* copy_;
};

}  // namespace

void SkipValue(Reader& r, const TypeDesc& d, std::string* bytes) {
  if (bytes == nullptr) {
    state::WalkValue(r, d, nullptr, 0);
    return;
  }
  TeeReader tee(r, bytes);
  state::WalkValue(tee, d, nullptr, 0);
  if (!tee.ok()) r.Fail(tee.error());
}

}  // namespace ckpt::detail
