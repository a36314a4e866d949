#include "state/compat.h"

#include <vector>

namespace ckpt {
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

bool Refuse(std::string* why, std::string s) {
  if (why != nullptr && why->empty()) *why = std::move(s);
  return false;
}

bool Differ(const TypeDesc& img, const TypeDesc& prog, std::string* why) {
  return Refuse(why, img.ToString() + " in the image, the program declares " + prog.ToString());
}

bool Args(TypeDesc* img, const TypeDesc& prog, std::string* why) {
  if (img->args.size() != prog.args.size()) return Differ(*img, prog, why);
  for (std::size_t i = 0; i < img->args.size(); ++i) {
    if (!detail::MatchType(&img->args[i], prog.args[i], why)) return false;
  }
  return true;
}

int IndexOf(const std::vector<std::string>& names, const std::string& n) {
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == n) return static_cast<int>(i);
  return -1;
}

// The program's field that image field `name` goes to: the same name, or the
// one it was renamed to (unless the image also has a field of that name).
int Destination(const TypeDesc& img, const TypeDesc& prog, const std::string& name) {
  int j = IndexOf(prog.fields, name);
  if (j >= 0) return j;
  for (const auto& [from, to] : prog.renamed) {
    if (from == name && IndexOf(img.fields, to) < 0) return IndexOf(prog.fields, to);
  }
  return -1;
}

bool MatchStruct(TypeDesc* img, const TypeDesc& prog, std::string* why) {
  img->field_map.clear();
  img->evolve = img->run_upgrade = false;
  if (img->name != prog.name || img->fields.size() != img->args.size()) return Differ(*img, prog, why);
  if (img->version > prog.version) {
    return Refuse(why, prog.name + " is version " + std::to_string(img->version) +
                           " in the image, the program's is version " + std::to_string(prog.version) +
                           ": a program cannot read a newer version of its state");
  }
  bool same = img->fields == prog.fields;
  std::vector<int> map(img->args.size(), -1);
  std::vector<bool> taken(prog.fields.size(), false);
  for (std::size_t i = 0; i < img->args.size(); ++i) {
    const int j = Destination(*img, prog, img->fields[i]);
    if (j < 0 || taken[static_cast<std::size_t>(j)]) {
      same = false;  // removed: its value is read past (and shown to the upgrade hook)
      continue;
    }
    std::string sub;
    if (!detail::MatchType(&img->args[i], prog.args[static_cast<std::size_t>(j)], &sub)) {
      if (prog.upgradable) {  // the type changed: the hook converts it, the field keeps its default
        same = false;
        continue;
      }
      return Refuse(why, "field '" + img->fields[i] + "' of " + prog.name + " is " + sub);
    }
    taken[static_cast<std::size_t>(j)] = true;
    map[i] = j;
  }
  img->run_upgrade = prog.upgradable && (!same || img->version < prog.version);
  img->evolve = !same || img->run_upgrade;
  if (img->evolve) img->field_map = std::move(map);
  return true;
}

}  // namespace

namespace detail {

bool MatchType(TypeDesc* img, const TypeDesc& prog, std::string* why) {
  if (img->kind != prog.kind) return Differ(*img, prog, why);
  switch (img->kind) {
    case K::kInt:
    case K::kUInt:
      return true;  // width checked per value
    case K::kEnum:
      return img->name == prog.name || Differ(*img, prog, why);
    case K::kBool:
    case K::kChar:
    case K::kWChar:
    case K::kString:
    case K::kMonostate:
      return true;
    case K::kFloat:  // float to double is exact; the other way is not
      return img->width <= prog.width || Differ(*img, prog, why);
    case K::kOpaque:
      return img->name == prog.name || Differ(*img, prog, why);
    case K::kSeq:
    case K::kMap:
    case K::kSet:
      if (img->name != prog.name && (Family(img->name) == 0 || Family(img->name) != Family(prog.name)))
        return Differ(*img, prog, why);
      return Args(img, prog, why);
    case K::kArray:  // array, complex and bitset must not be mistaken for each other
      if (img->name != prog.name || img->count != prog.count) return Differ(*img, prog, why);
      return Args(img, prog, why);
    case K::kStruct:
      return MatchStruct(img, prog, why);
    case K::kOptional:
    case K::kPair:
    case K::kTuple:
    case K::kVariant:
      return Args(img, prog, why);
  }
  return Differ(*img, prog, why);
}

}  // namespace detail

namespace state {

bool Compatible(const TypeDesc& image, const TypeDesc& program) {
  TypeDesc copy = image;
  return detail::MatchType(&copy, program, nullptr);
}

std::string Mismatch(const TypeDesc& image, const TypeDesc& program, const std::string& why) {
  std::string m = image.ToString() + " in the image, the program declares " + program.ToString();
  if (!why.empty() && why != m) m += " (" + why + ")";
  return m;
}

}  // namespace state
}  // namespace ckpt
