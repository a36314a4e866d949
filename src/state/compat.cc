#include "state/compat.h"

namespace ckpt::state {

namespace {

using K = TypeDesc::Kind;

int Family(const std::string& name) {
  if (name == "vector" || name == "deque" || name == "list") return 1;
  if (name == "map" || name == "unordered_map") return 2;
  if (name == "set" || name == "unordered_set") return 3;
  if (name == "multimap" || name == "unordered_multimap") return 4;
  if (name == "multiset" || name == "unordered_multiset") return 5;
  return 0;
}

bool Args(const TypeDesc& a, const TypeDesc& b) {
  if (a.args.size() != b.args.size()) return false;
  for (std::size_t i = 0; i < a.args.size(); ++i) {
    if (!Compatible(a.args[i], b.args[i])) return false;
  }
  return true;
}

}  // namespace

bool Compatible(const TypeDesc& img, const TypeDesc& prog) {
  if (img.kind != prog.kind) return false;
  switch (img.kind) {
    case K::kInt:
    case K::kUInt:
      return true;  // width checked per value
    case K::kEnum:
      return img.name == prog.name;
    case K::kBool:
    case K::kChar:
    case K::kWChar:
    case K::kString:
    case K::kMonostate:
      return true;
    case K::kFloat:
      return img.width == prog.width;
    case K::kOpaque:
      return img.name == prog.name;
    case K::kSeq:
    case K::kMap:
    case K::kSet:
      return (img.name == prog.name || (Family(img.name) != 0 && Family(img.name) == Family(prog.name))) &&
             Args(img, prog);
    case K::kArray:  // array, complex and bitset must not be mistaken for each other
      return img.name == prog.name && img.count == prog.count && Args(img, prog);
    case K::kStruct:
      return img.name == prog.name && img.fields == prog.fields && Args(img, prog);
    case K::kOptional:
    case K::kPair:
    case K::kTuple:
    case K::kVariant:
      return Args(img, prog);
  }
  return false;
}

}  // namespace ckpt::state
