// TypeDesc rendering, parsing and helpers (declared in include/ckpt/serialize.hpp).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

#include "ckpt/serialize.hpp"

namespace ckpt {

namespace {

using K = TypeDesc::Kind;

std::string Join(const std::vector<TypeDesc>& args) {
  std::string s;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) s += ',';
    s += args[i].ToString();
  }
  return s;
}

class Parser {
 public:
  explicit Parser(std::string_view t) : t_(t) {}
  bool Parse(TypeDesc* out) { return Type(out, 0) && i_ == t_.size(); }

 private:
  bool Eat(char c) {
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  std::string Ident() {
    std::size_t b = i_;
    while (i_ < t_.size()) {
      char c = t_[i_];
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
        ++i_;
      } else if (c == ':' && i_ + 1 < t_.size() && t_[i_ + 1] == ':') {
        i_ += 2;  // namespace separator in struct names
      } else {
        break;
      }
    }
    return std::string(t_.substr(b, i_ - b));
  }
  bool Number(std::uint64_t* v) {
    std::size_t b = i_;
    *v = 0;
    while (i_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[i_]))) {
      if (*v > (~std::uint64_t{0}) / 10) return false;
      *v = *v * 10 + static_cast<std::uint64_t>(t_[i_] - '0');
      ++i_;
    }
    return i_ > b;
  }
  bool Args(TypeDesc* d, std::size_t n_min, std::size_t n_max, int depth) {
    if (!Eat('<')) return false;
    do {
      TypeDesc a;
      if (!Type(&a, depth + 1)) return false;
      d->args.push_back(std::move(a));
    } while (Eat(','));
    return Eat('>') && d->args.size() >= n_min && d->args.size() <= n_max;
  }
  static bool Width(const std::string& s, std::size_t from, std::uint8_t* w) {
    std::string n = s.substr(from);
    if (n == "8")
      *w = 1;
    else if (n == "16")
      *w = 2;
    else if (n == "32")
      *w = 4;
    else if (n == "64")
      *w = 8;
    else
      return false;
    return true;
  }
  bool Type(TypeDesc* d, int depth) {
    if (depth > 64) return false;
    std::string id = Ident();
    if (id.empty()) return false;
    // A struct first: one may be called `queue` or `string` like another type.
    // Name@N{...} is version N of its shape (CKPT_VERSION).
    std::uint64_t version = 0;
    if (Eat('@') &&
        (!Number(&version) || version == 0 || version > 0xffffffffu || i_ >= t_.size() || t_[i_] != '{'))
      return false;
    if (Eat('{')) {
      d->name = id;
      d->kind = K::kStruct;
      d->version = static_cast<std::uint32_t>(version);
      if (Eat('}')) return true;
      do {
        std::string f = Ident();
        if (f.empty() || !Eat(':')) return false;
        TypeDesc a;
        if (!Type(&a, depth + 1)) return false;
        d->fields.push_back(std::move(f));
        d->args.push_back(std::move(a));
      } while (Eat(','));
      return Eat('}');
    }
    if (id == "bool") {
      d->kind = K::kBool;
      d->width = 1;
      return true;
    }
    if (id == "char") {
      d->kind = K::kChar;
      d->width = 1;
      return true;
    }
    if (id == "wchar") {
      d->kind = K::kWChar;
      d->width = 4;
      return true;
    }
    if (id == "string") {
      d->kind = K::kString;
      d->name = id;
      return true;
    }
    if (id == "monostate") {
      d->kind = K::kMonostate;
      d->name = id;
      return true;
    }
    if ((id[0] == 'i' || id[0] == 'u') && Width(id, 1, &d->width)) {
      d->kind = id[0] == 'i' ? K::kInt : K::kUInt;
      return true;
    }
    if (id[0] == 'f' && Width(id, 1, &d->width) && (d->width == 4 || d->width == 8)) {
      d->kind = K::kFloat;
      return true;
    }
    if (id == "enum") {
      std::string u;
      if (!Eat('<')) return false;
      u = Ident();
      if (!Eat('>') || u.size() < 2 || (u[0] != 'i' && u[0] != 'u') || !Width(u, 1, &d->width)) return false;
      d->kind = K::kEnum;
      d->name = u.substr(0, 1);
      return true;
    }
    d->name = id;
    if (id == "vector" || id == "deque" || id == "list" || id == "stack" || id == "queue" ||
        id == "priority_queue") {
      d->kind = K::kSeq;
      return Args(d, 1, 1, depth);
    }
    if (id == "wstring") {  // code points, 32 bits each
      d->kind = K::kSeq;
      return Args(d, 1, 1, depth) && d->args[0].kind == K::kWChar;
    }
    if (id == "map" || id == "unordered_map" || id == "multimap" || id == "unordered_multimap") {
      d->kind = K::kMap;
      return Args(d, 2, 2, depth);
    }
    if (id == "set" || id == "unordered_set" || id == "multiset" || id == "unordered_multiset") {
      d->kind = K::kSet;
      return Args(d, 1, 1, depth);
    }
    if (id == "optional" || id == "unique_ptr") {
      d->kind = K::kOptional;
      return Args(d, 1, 1, depth);
    }
    if (id == "complex") {  // (real, imaginary), like array<T,2>
      d->kind = K::kArray;
      d->count = 2;
      return Args(d, 1, 1, depth) && d->args[0].kind == K::kFloat;
    }
    if (id == "bitset") {  // one bool byte per bit, bit 0 first
      d->kind = K::kArray;
      TypeDesc b;
      b.kind = K::kBool;
      b.width = 1;
      d->args.push_back(b);
      return Eat('<') && Number(&d->count) && Eat('>');
    }
    if (id == "pair") {
      d->kind = K::kPair;
      return Args(d, 2, 2, depth);
    }
    if (id == "tuple") {
      d->kind = K::kTuple;
      return Args(d, 0, 1024, depth);
    }
    if (id == "variant") {
      d->kind = K::kVariant;
      return Args(d, 1, 1024, depth);
    }
    if (id == "array") {
      d->kind = K::kArray;
      if (!Eat('<')) return false;
      TypeDesc e;
      if (!Type(&e, depth + 1)) return false;
      d->args.push_back(std::move(e));
      return Eat(',') && Number(&d->count) && Eat('>');
    }
    // Opaque (random engines and distributions): a known name, or an
    // *_engine / *_distribution name with its balanced <...> parameters.
    d->kind = K::kOpaque;
    static const char* const kAliases[] = {"mt19937", "mt19937_64", "minstd_rand0", "minstd_rand"};
    bool alias = false;
    for (const char* a : kAliases) alias = alias || id == a;
    auto ends_with = [&](std::string_view suffix) {
      return id.size() > suffix.size() && id.compare(id.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (alias) return true;
    if (!(ends_with("_engine") || ends_with("_distribution")) || i_ >= t_.size() || t_[i_] != '<')
      return false;
    {
      std::size_t b = i_;
      int level = 0;
      do {
        if (t_[i_] == '<')
          ++level;
        else if (t_[i_] == '>')
          --level;
        ++i_;
      } while (level > 0 && i_ < t_.size());
      if (level != 0) return false;
      d->name += std::string(t_.substr(b, i_ - b));
    }
    return true;
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

}  // namespace

std::string TypeDesc::ToString() const {
  auto bits = [&] { return std::to_string(width * 8); };
  switch (kind) {
    case K::kBool:
      return "bool";
    case K::kInt:
      return "i" + bits();
    case K::kUInt:
      return "u" + bits();
    case K::kFloat:
      return "f" + bits();
    case K::kChar:
      return "char";
    case K::kWChar:
      return "wchar";
    case K::kEnum:
      return "enum<" + name + bits() + ">";
    case K::kString:
      return "string";
    case K::kMonostate:
      return "monostate";
    case K::kOpaque:
      return name;
    case K::kArray:
      if (name == "complex") return "complex<" + (args.empty() ? std::string("?") : args[0].ToString()) + ">";
      if (name == "bitset") return "bitset<" + std::to_string(count) + ">";
      return "array<" + (args.empty() ? std::string("?") : args[0].ToString()) + "," + std::to_string(count) +
             ">";
    case K::kStruct: {
      std::string s = name + (version != 0 ? "@" + std::to_string(version) : std::string()) + "{";
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (i) s += ',';
        s += (i < fields.size() ? fields[i] : std::string("?")) + ":" + args[i].ToString();
      }
      return s + "}";
    }
    default:
      return name + "<" + Join(args) + ">";
  }
}

bool operator==(const TypeDesc& a, const TypeDesc& b) {
  return a.kind == b.kind && a.width == b.width && a.name == b.name && a.count == b.count &&
         a.args == b.args && a.fields == b.fields && a.version == b.version;
}

bool ParseTypeDesc(std::string_view text, TypeDesc* out) {
  *out = TypeDesc();
  return Parser(text).Parse(out);
}

namespace detail {

std::size_t MinEncodedSize(const TypeDesc& d) {
  switch (d.kind) {
    case K::kBool:
    case K::kChar:
      return 1;
    case K::kInt:
    case K::kUInt:
    case K::kFloat:
    case K::kEnum:
    case K::kWChar:
      return d.width;
    case K::kMonostate:
      return 0;
    case K::kArray: {
      // At most 2^40 (or what size_t holds, on 32-bit platforms): more than any data.
      constexpr std::uint64_t kCap = std::min<std::uint64_t>(std::uint64_t{1} << 40, SIZE_MAX);
      std::uint64_t e = d.args.empty() ? 0 : MinEncodedSize(d.args[0]);
      if (e != 0 && d.count > kCap / e) return static_cast<std::size_t>(kCap);
      return static_cast<std::size_t>(d.count * e);
    }
    case K::kPair:
    case K::kTuple:
    case K::kStruct: {
      std::size_t s = 0;
      for (const auto& a : d.args) s += MinEncodedSize(a);
      return s;
    }
    default:
      return 1;  // length-prefixed or tagged
  }
}

std::vector<std::string> SplitFieldNames(const char* list) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = list;; ++p) {
    if (*p == ',' || *p == '\0') {
      std::size_t b = cur.find_first_not_of(" \t\n");
      std::size_t e = cur.find_last_not_of(" \t\n");
      out.push_back(b == std::string::npos ? std::string() : cur.substr(b, e - b + 1));
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

}  // namespace detail
}  // namespace ckpt
