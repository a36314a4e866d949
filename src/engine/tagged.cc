// Tagged records (tagged.h): keys, numbers, bytes, and the field reader.
#include "engine/tagged.h"

#include <cstdio>
#include <cstdlib>

namespace ckpt::engine::tagged {

void PutKey(std::string* o, std::uint32_t tag, Wire w, bool critical) {
  PutVarint(o, (std::uint64_t{tag} << 3) | (critical ? kCriticalBit : 0) | static_cast<std::uint64_t>(w));
}

void PutNumber(std::string* o, std::uint32_t tag, std::uint64_t as_varint, std::uint64_t as_fixed64,
               bool critical) {
  if (as_varint < (std::uint64_t{1} << 56)) {
    PutKey(o, tag, Wire::kVarint, critical);
    PutVarint(o, as_varint);
  } else {
    PutKey(o, tag, Wire::kFixed64, critical);
    PutU64(o, as_fixed64);
  }
}

void PutBytes(std::string* o, std::uint32_t tag, std::string_view b, bool critical) {
  PutKey(o, tag, Wire::kBytes, critical);
  PutString(o, b);
}

bool FieldReader::Fail(std::string why) {
  error_ = std::move(why);
  return false;
}

bool FieldReader::Next(Field* f) {
  if (!ok() || r_.empty()) return false;
  std::uint64_t key = r_.Varint();
  if (!r_.ok()) return Fail("truncated field key");
  if ((key >> 3) == 0 || (key >> 3) > kMaxTag) return Fail("field key with tag " + std::to_string(key >> 3));
  f->tag = static_cast<std::uint32_t>(key >> 3);
  f->critical = (key & kCriticalBit) != 0;
  switch (key & 3) {
    case 0:
      f->wire = Wire::kVarint;
      f->num = r_.Varint();
      break;
    case 1:
      f->wire = Wire::kFixed64;
      f->num = r_.U64();
      break;
    case 2:
      f->wire = Wire::kBytes;
      f->bytes = r_.String();
      break;
    default:
      return Fail("field " + std::to_string(f->tag) + " has an unknown wire type (3)");
  }
  if (!r_.ok()) return Fail("field " + std::to_string(f->tag) + " is truncated");
  return true;
}

namespace {

std::string Path(const Where& w) {
  if (w.parent == nullptr) return "";
  std::string up = Path(*w.parent);
  return up.empty() ? std::string(w.name) : up + "." + w.name;
}

}  // namespace

Status Malformed(const Where& w, const std::string& why) {
  std::string path = Path(w);
  return Corruption(std::string("malformed ") + w.section +
                    " section in process image: " + (path.empty() ? "" : "in " + path + ": ") + why);
}

Status UnknownCritical(const Where& w, std::uint32_t tag) {
  std::string path = Path(w);
  return NotSupported(std::string(w.section) + " section: field " + std::to_string(tag) +
                      (path.empty() ? "" : " of " + path) +
                      " is required by the image but unknown to this ckpt (image written by a newer ckpt)");
}

void BadFieldList() {
  std::fputs(
      "ckpt: internal error: a field list of the process image model is malformed (tags unique, "
      "1 to 2^28-1, at most 64 fields)\n",
      stderr);
  std::abort();
}

}  // namespace ckpt::engine::tagged
