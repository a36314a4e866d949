// Portable value encoding for CKPT variables: type descriptors (TypeDesc),
// the byte Writer/Reader, and ckpt::Traits<T> for every supported type.
// Encoding is little-endian and fixed-width whatever the host; contiguous
// arithmetic data is copied in bulk when the host is little-endian.
// Writers and Readers are used by one thread at a time.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <bitset>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace ckpt {

// ---------------------------------------------------------------------------
// Type descriptors. Rendered as text ("vector<f64>", "map<string,i32>",
// "Particle{x:f64,y:f64}") and stored beside every variable in an image.
struct TypeDesc {
  enum class Kind : std::uint8_t {
    kBool,
    kInt,
    kUInt,
    kFloat,
    kChar,
    kWChar,
    kEnum,
    kString,
    kSeq,
    kArray,
    kMap,
    kSet,
    kOptional,
    kPair,
    kTuple,
    kVariant,
    kMonostate,
    kStruct,
    kOpaque,
  };
  Kind kind = Kind::kBool;
  std::uint8_t width = 0;           // bytes, for numbers and enums
  std::string name;                 // container or struct or opaque name
  std::uint64_t count = 0;          // array length
  std::vector<TypeDesc> args;       // element / key,value / field types
  std::vector<std::string> fields;  // struct field names
  std::uint32_t version = 0;        // a struct's CKPT_VERSION (0: none declared)

  // Set by Describe() on the program's side only; never stored in an image.
  std::vector<std::pair<std::string, std::string>> renamed;  // {field name in older images, name now}
  bool upgradable = false;                                   // ckpt::Upgrade<T>::Apply exists

  // Set on the image's side by the library before a Load, for a struct whose
  // shape or version differs from the program's: image field i goes to the
  // program's field field_map[i], or nowhere (-1).
  std::vector<int> field_map;
  bool evolve = false;       // load through field_map
  bool run_upgrade = false;  // and call ckpt::Upgrade<T>::Apply afterwards

  std::string ToString() const;
  friend bool operator==(const TypeDesc& a, const TypeDesc& b);
};

// Parses the text form; returns false on malformed input.
bool ParseTypeDesc(std::string_view text, TypeDesc* out);

// ---------------------------------------------------------------------------
// Writer: a buffered byte sink with an overflow hook.
class Writer {
 public:
  virtual ~Writer() = default;

  void Bytes(const void* p, std::size_t n) {
    if (static_cast<std::size_t>(end_ - pos_) >= n) {
      if (n != 0) std::memcpy(pos_, p, n);
      pos_ += n;
    } else {
      Overflow(p, n);
    }
  }
  void U8(std::uint8_t v) { Bytes(&v, 1); }
  template <typename U>
  void Fixed(U v) {  // unsigned integer, little-endian
    unsigned char b[sizeof(U)];
    for (std::size_t i = 0; i < sizeof(U); ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    Bytes(b, sizeof(U));
  }
  void Varint(std::uint64_t v) {
    unsigned char b[10];
    std::size_t n = 0;
    while (v >= 0x80) {
      b[n++] = static_cast<unsigned char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    b[n++] = static_cast<unsigned char>(v);
    Bytes(b, n);
  }
  // Large contiguous data: may bypass the buffer.
  virtual void Bulk(const void* p, std::size_t n) { Bytes(p, n); }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 protected:
  virtual void Overflow(const void* p, std::size_t n) = 0;
  void SetError(std::string e) {
    if (error_.empty()) error_ = std::move(e);
  }
  unsigned char* pos_ = nullptr;
  unsigned char* end_ = nullptr;
  std::string error_;
};

// Reader: a buffered byte source with sticky errors. After the first error
// every read yields zeros and ok() is false; error() says what went wrong.
class Reader {
 public:
  virtual ~Reader() = default;

  bool Bytes(void* p, std::size_t n) {
    if (static_cast<std::size_t>(end_ - pos_) >= n) {
      if (n != 0) std::memcpy(p, pos_, n);
      pos_ += n;
      return true;
    }
    return Underflow(p, n);
  }
  std::uint8_t U8() {
    std::uint8_t v = 0;
    Bytes(&v, 1);
    return v;
  }
  template <typename U>
  U Fixed() {
    unsigned char b[sizeof(U)] = {};
    Bytes(b, sizeof(U));
    U v = 0;
    for (std::size_t i = sizeof(U); i-- > 0;) v = static_cast<U>((v << 8) | b[i]);
    return v;
  }
  // An unsigned integer stored `width` bytes wide (1, 2, 4 or 8); any other
  // width fails the reader.
  std::uint64_t UIntOfWidth(unsigned width) {
    switch (width) {
      case 1:
        return U8();
      case 2:
        return Fixed<std::uint16_t>();
      case 4:
        return Fixed<std::uint32_t>();
      case 8:
        return Fixed<std::uint64_t>();
      default:
        Fail("invalid integer width in the image");
        return 0;
    }
  }
  std::uint64_t Varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      std::uint8_t b = U8();
      if (!ok()) return 0;
      if (shift == 63 && b > 1) break;
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    Fail("malformed length field");
    return 0;
  }
  // Reads a count of elements that each take at least `min_bytes` bytes and
  // rejects counts the data cannot hold. Elements that take no bytes at all
  // (empty structs, monostate) are limited to 2^20 per container.
  std::uint64_t Count(std::size_t min_bytes) {
    std::uint64_t n = Varint();
    std::uint64_t rem = Remaining();
    if (ok() &&
        ((min_bytes > 0 && n > rem / min_bytes) || (min_bytes == 0 && n > (std::uint64_t{1} << 20)))) {
      Fail("container of " + std::to_string(n) + " elements cannot fit in the " + std::to_string(rem) +
           " bytes left");
      return 0;
    }
    return n;
  }
  virtual bool Bulk(void* p, std::size_t n) { return Bytes(p, n); }
  // Bytes left in the value's data.
  virtual std::uint64_t Remaining() const = 0;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  void Fail(std::string e) {
    if (error_.empty()) error_ = std::move(e);
  }

 protected:
  virtual bool Underflow(void* p, std::size_t n) = 0;
  const unsigned char* pos_ = nullptr;
  const unsigned char* end_ = nullptr;
  std::string error_;
};

// Writer/Reader over memory, for tests and the C API.
class StringWriter final : public Writer {
 public:
  StringWriter() { Reset(); }
  // The bytes written so far.
  std::string str() { return buf_.substr(0, used_ + static_cast<std::size_t>(pos_ - chunk())); }

 protected:
  void Overflow(const void* p, std::size_t n) override {
    used_ += static_cast<std::size_t>(pos_ - chunk());
    buf_.resize(used_);
    buf_.append(static_cast<const char*>(p), n);
    used_ = buf_.size();
    Reset();
  }

 private:
  // Keeps a spare tail of the string as the write buffer.
  void Reset() {
    buf_.resize(used_ + kSpare);
    pos_ = chunk();
    end_ = pos_ + kSpare;
  }
  unsigned char* chunk() { return reinterpret_cast<unsigned char*>(buf_.data()) + used_; }
  static constexpr std::size_t kSpare = 256;
  std::string buf_;
  std::size_t used_ = 0;
};

class StringReader final : public Reader {
 public:
  explicit StringReader(std::string_view data) {
    pos_ = reinterpret_cast<const unsigned char*>(data.data());
    end_ = pos_ + data.size();
  }
  std::uint64_t Remaining() const override { return static_cast<std::uint64_t>(end_ - pos_); }
  bool AtEnd() const { return pos_ == end_; }

 protected:
  bool Underflow(void* p, std::size_t n) override {
    std::memset(p, 0, n);
    pos_ = end_;
    Fail("the value's data ends early");
    return false;
  }
};

// ---------------------------------------------------------------------------
// Traits<T>: Describe() gives the TypeDesc, Save() encodes, Load() decodes from
// data described by `img` (the image's type, checked compatible beforehand).
template <typename T, typename Enable = void>
struct Traits {
  static_assert(sizeof(T) == 0,
                "ckpt: this type cannot be checkpointed. Supported: arithmetic types, enums, "
                "std::string, standard containers, optional/pair/tuple/variant, random engines and "
                "distributions, and structs declared with CKPT_FIELDS(Type, field...)");
};

namespace detail {

inline TypeDesc Leaf(TypeDesc::Kind k, std::uint8_t w, std::string name = {}) {
  TypeDesc d;
  d.kind = k;
  d.width = w;
  d.name = std::move(name);
  return d;
}
inline TypeDesc Node(TypeDesc::Kind k, std::string name, std::vector<TypeDesc> args) {
  TypeDesc d;
  d.kind = k;
  d.name = std::move(name);
  d.args = std::move(args);
  return d;
}

// Smallest encoded size of a value described by `d` (for sanity checks).
std::size_t MinEncodedSize(const TypeDesc& d);

// Decides whether a value of the image's type `*img` can be loaded into the
// program's type `prog` (the rules are in docs/api.md, "State that evolves"),
// and records in *img how: the field map of every struct whose shape or
// version changed. On false, *why (if not null) says which part differs.
bool MatchType(TypeDesc* img, const TypeDesc& prog, std::string* why);
// Reads past one value of type `d`; with `bytes`, appends the bytes read.
void SkipValue(Reader& r, const TypeDesc& d, std::string* bytes = nullptr);

// `raw` read from `width` bytes (1, 2, 4 or 8), sign-extended to 64 bits.
inline std::int64_t SignExtend(std::uint64_t raw, unsigned width) {
  if (width == 0 || width >= 8) return static_cast<std::int64_t>(raw);  // (other widths fail the reader)
  const unsigned shift = 64 - width * 8;
  return static_cast<std::int64_t>(raw << shift) >> shift;
}

// Reads one integer of the image's width/signedness and converts it to T,
// failing the reader when the value does not fit.
template <typename T>
T LoadInteger(Reader& r, const TypeDesc& img) {
  const bool img_signed = img.kind == TypeDesc::Kind::kInt ||
                          (img.kind == TypeDesc::Kind::kEnum && img.name == "i") ||
                          (img.kind == TypeDesc::Kind::kChar && img.width == 0xff);
  const std::uint64_t raw = r.UIntOfWidth(img.width);
  if (!r.ok()) return T{};
  using L = std::numeric_limits<T>;
  if (img_signed) {
    const std::int64_t v = SignExtend(raw, img.width);
    if constexpr (L::is_signed) {
      if (v < static_cast<std::int64_t>(L::min()) || v > static_cast<std::int64_t>(L::max())) {
        r.Fail("value " + std::to_string(v) + " does not fit this platform's " +
               std::to_string(sizeof(T) * 8) + "-bit integer");
        return T{};
      }
    } else {
      if (v < 0 || static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(L::max())) {
        r.Fail("value " + std::to_string(v) + " does not fit this platform's unsigned " +
               std::to_string(sizeof(T) * 8) + "-bit integer");
        return T{};
      }
    }
    return static_cast<T>(v);
  }
  if (raw > static_cast<std::uint64_t>(L::max())) {
    r.Fail("value " + std::to_string(raw) + " does not fit this platform's " + std::to_string(sizeof(T) * 8) +
           "-bit integer");
    return T{};
  }
  return static_cast<T>(raw);
}

template <typename T>
void SaveArithmetic(Writer& w, T v) {
  if constexpr (std::is_same_v<T, bool>) {
    w.U8(v ? 1 : 0);
  } else if constexpr (std::is_floating_point_v<T>) {
    if constexpr (sizeof(T) == 4)
      w.Fixed(std::bit_cast<std::uint32_t>(v));
    else
      w.Fixed(std::bit_cast<std::uint64_t>(v));
  } else {
    using U = std::make_unsigned_t<T>;
    w.Fixed(static_cast<U>(v));
  }
}

// True if values of T are encoded as their little-endian object bytes.
// (`long` is stored as 64 bits, so it is bulk only where it is 64 bits wide.)
template <typename T>
inline constexpr bool kBulkable =
    std::endian::native == std::endian::little &&
    (std::is_integral_v<T> || std::is_floating_point_v<T>)&&!std::is_same_v<T, bool> &&
    !std::is_same_v<T, wchar_t> &&
    !((std::is_same_v<T, long> || std::is_same_v<T, unsigned long>)&&sizeof(long) != 8);

// Saves n contiguous arithmetic values.
template <typename T>
void SaveArray(Writer& w, const T* p, std::size_t n) {
  if constexpr (kBulkable<T>) {
    w.Bulk(p, n * sizeof(T));
  } else {
    for (std::size_t i = 0; i < n; ++i) Traits<T>::Save(w, p[i]);
  }
}

template <typename T>
void LoadArray(Reader& r, T* p, std::size_t n, const TypeDesc& elem) {
  if constexpr (kBulkable<T>) {
    if (elem == Traits<T>::Describe()) {
      r.Bulk(p, n * sizeof(T));
      return;
    }
  }
  for (std::size_t i = 0; i < n && r.ok(); ++i) Traits<T>::Load(r, p[i], elem);
}

}  // namespace detail

// --- arithmetic ------------------------------------------------------------
template <typename T>
struct Traits<T, std::enable_if_t<std::is_arithmetic_v<T>>> {
  static_assert(!std::is_same_v<T, long double>,
                "ckpt: long double has no portable representation (80-bit x87, 128-bit, or 64-bit "
                "depending on the platform); use double");
  // `long` is 32-bit on Windows and 64-bit on Linux: it is always stored as 64 bits.
  static constexpr bool kWide = std::is_same_v<T, long> || std::is_same_v<T, unsigned long>;
  using Stored =
      std::conditional_t<kWide, std::conditional_t<std::is_signed_v<T>, std::int64_t, std::uint64_t>, T>;

  static TypeDesc Describe() {
    using K = TypeDesc::Kind;
    if constexpr (std::is_same_v<T, bool>)
      return detail::Leaf(K::kBool, 1);
    else if constexpr (std::is_floating_point_v<T>)
      return detail::Leaf(K::kFloat, sizeof(T));
    else if constexpr (std::is_same_v<T, char>)
      return detail::Leaf(K::kChar, 1);
    else if constexpr (std::is_same_v<T, wchar_t>)
      return detail::Leaf(K::kWChar, 4);
    else if constexpr (std::is_signed_v<T>)
      return detail::Leaf(K::kInt, sizeof(Stored));
    else
      return detail::Leaf(K::kUInt, sizeof(Stored));
  }
  static void Save(Writer& w, const T& v) {
    if constexpr (std::is_same_v<T, wchar_t>)
      w.Fixed(static_cast<std::uint32_t>(v));
    else
      detail::SaveArithmetic<Stored>(w, static_cast<Stored>(v));
  }
  static void Load(Reader& r, T& v, const TypeDesc& img) {
    using K = TypeDesc::Kind;
    if constexpr (std::is_same_v<T, bool>) {
      std::uint8_t b = r.U8();
      if (b > 1) r.Fail("bool holds " + std::to_string(b));
      v = b == 1;
    } else if constexpr (std::is_floating_point_v<T>) {
      if constexpr (sizeof(T) == 4)
        v = std::bit_cast<float>(r.Fixed<std::uint32_t>());
      else if (img.width == 4)  // widened from float: exact
        v = static_cast<double>(std::bit_cast<float>(r.Fixed<std::uint32_t>()));
      else
        v = std::bit_cast<double>(r.Fixed<std::uint64_t>());
    } else if constexpr (std::is_same_v<T, char>) {
      v = static_cast<char>(r.U8());
    } else if constexpr (std::is_same_v<T, wchar_t>) {
      std::uint32_t c = r.Fixed<std::uint32_t>();
      if (c > static_cast<std::uint32_t>(std::numeric_limits<wchar_t>::max())) {
        r.Fail("wchar_t value " + std::to_string(c) + " does not fit this platform's " +
               std::to_string(sizeof(wchar_t) * 8) + "-bit wchar_t");
      }
      v = static_cast<wchar_t>(c);
    } else {
      (void)K::kInt;
      v = detail::LoadInteger<T>(r, img);
    }
  }
};

// --- enums ----------------------------------------------------------------
template <typename T>
struct Traits<T, std::enable_if_t<std::is_enum_v<T>>> {
  using U = std::underlying_type_t<T>;
  static TypeDesc Describe() {
    TypeDesc d =
        detail::Leaf(TypeDesc::Kind::kEnum, Traits<U>::Describe().width, std::is_signed_v<U> ? "i" : "u");
    return d;
  }
  static void Save(Writer& w, const T& v) { Traits<U>::Save(w, static_cast<U>(v)); }
  static void Load(Reader& r, T& v, const TypeDesc& img) {
    v = static_cast<T>(detail::LoadInteger<U>(r, img));
  }
};

// --- std::string -----------------------------------------------------------
template <>
struct Traits<std::string> {
  static TypeDesc Describe() { return detail::Leaf(TypeDesc::Kind::kString, 0, "string"); }
  static void Save(Writer& w, const std::string& v) {
    w.Varint(v.size());
    w.Bulk(v.data(), v.size());
  }
  static void Load(Reader& r, std::string& v, const TypeDesc&) {
    std::uint64_t n = r.Count(1);
    v.resize(static_cast<std::size_t>(n));
    r.Bulk(v.data(), v.size());
  }
};

namespace detail {

// Sequences: vector, deque, list (vector<bool> is a sequence of bools).
template <typename C, typename E>
struct SeqTraits {
  static TypeDesc Describe(const char* name) {
    return Node(TypeDesc::Kind::kSeq, name, {Traits<E>::Describe()});
  }
  static void Save(Writer& w, const C& v) {
    w.Varint(v.size());
    if constexpr (std::is_same_v<C, std::vector<E>> && !std::is_same_v<E, bool> && std::is_arithmetic_v<E>) {
      SaveArray(w, v.data(), v.size());
    } else {
      for (const auto& e : v) Traits<E>::Save(w, e);
    }
  }
  static void Load(Reader& r, C& v, const TypeDesc& img) {
    const TypeDesc& elem = img.args.at(0);
    std::uint64_t n = r.Count(MinEncodedSize(elem));
    if (!r.ok()) return;
    v.clear();
    if constexpr (std::is_same_v<C, std::vector<E>> && !std::is_same_v<E, bool> && std::is_arithmetic_v<E>) {
      v.resize(static_cast<std::size_t>(n));
      LoadArray(r, v.data(), v.size(), elem);
    } else {
      v.resize(static_cast<std::size_t>(n));
      for (auto it = v.begin(); it != v.end() && r.ok(); ++it) {
        if constexpr (std::is_same_v<E, bool>) {
          bool b = false;
          Traits<bool>::Load(r, b, elem);
          *it = b;
        } else {
          Traits<E>::Load(r, *it, elem);
        }
      }
    }
  }
};

// Inserts into a multi container after `last` (the element inserted before):
// ordered ones insert an equal key after those present, unordered ones after
// the hint when it is equal.
template <typename C, typename... A>
typename C::iterator InsertMulti(C& c, typename C::iterator last, A&&... a) {
  if constexpr (requires { c.key_comp(); })
    return c.emplace(std::forward<A>(a)...);
  else
    return c.emplace_hint(last, std::forward<A>(a)...);
}

// Maps and sets; Multi: multimap, multiset and their unordered forms, whose
// equal keys keep their order (each inserted after the one before it).
template <typename C, typename K, typename V, bool Multi = false>
struct MapTraits {
  static TypeDesc Describe(const char* name) {
    return Node(TypeDesc::Kind::kMap, name, {Traits<K>::Describe(), Traits<V>::Describe()});
  }
  static void Save(Writer& w, const C& m) {
    w.Varint(m.size());
    for (const auto& [k, v] : m) {
      Traits<K>::Save(w, k);
      Traits<V>::Save(w, v);
    }
  }
  static void Load(Reader& r, C& m, const TypeDesc& img) {
    std::uint64_t n = r.Count(MinEncodedSize(img.args.at(0)) + MinEncodedSize(img.args.at(1)));
    m.clear();
    auto last = m.end();
    for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
      K k{};
      V v{};
      Traits<K>::Load(r, k, img.args[0]);
      Traits<V>::Load(r, v, img.args[1]);
      if (!r.ok()) break;
      if constexpr (Multi)
        last = InsertMulti(m, last, std::move(k), std::move(v));
      else if (!m.emplace(std::move(k), std::move(v)).second)
        r.Fail("duplicate map key");
    }
  }
};

template <typename C, typename K, bool Multi = false>
struct SetTraits {
  static TypeDesc Describe(const char* name) {
    return Node(TypeDesc::Kind::kSet, name, {Traits<K>::Describe()});
  }
  static void Save(Writer& w, const C& s) {
    w.Varint(s.size());
    for (const auto& k : s) Traits<K>::Save(w, k);
  }
  static void Load(Reader& r, C& s, const TypeDesc& img) {
    std::uint64_t n = r.Count(MinEncodedSize(img.args.at(0)));
    s.clear();
    auto last = s.end();
    for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
      K k{};
      Traits<K>::Load(r, k, img.args[0]);
      if (!r.ok()) break;
      if constexpr (Multi)
        last = InsertMulti(s, last, std::move(k));
      else if (!s.insert(std::move(k)).second)
        r.Fail("duplicate set element");
    }
  }
};

}  // namespace detail

template <typename T, typename A>
struct Traits<std::vector<T, A>> : detail::SeqTraits<std::vector<T, A>, T> {
  static TypeDesc Describe() { return detail::SeqTraits<std::vector<T, A>, T>::Describe("vector"); }
};
template <typename T, typename A>
struct Traits<std::deque<T, A>> : detail::SeqTraits<std::deque<T, A>, T> {
  static TypeDesc Describe() { return detail::SeqTraits<std::deque<T, A>, T>::Describe("deque"); }
};
template <typename T, typename A>
struct Traits<std::list<T, A>> : detail::SeqTraits<std::list<T, A>, T> {
  static TypeDesc Describe() { return detail::SeqTraits<std::list<T, A>, T>::Describe("list"); }
};
template <typename K, typename V, typename C, typename A>
struct Traits<std::map<K, V, C, A>> : detail::MapTraits<std::map<K, V, C, A>, K, V> {
  static TypeDesc Describe() { return detail::MapTraits<std::map<K, V, C, A>, K, V>::Describe("map"); }
};
template <typename K, typename V, typename H, typename E, typename A>
struct Traits<std::unordered_map<K, V, H, E, A>>
    : detail::MapTraits<std::unordered_map<K, V, H, E, A>, K, V> {
  static TypeDesc Describe() {
    return detail::MapTraits<std::unordered_map<K, V, H, E, A>, K, V>::Describe("unordered_map");
  }
};
template <typename K, typename C, typename A>
struct Traits<std::set<K, C, A>> : detail::SetTraits<std::set<K, C, A>, K> {
  static TypeDesc Describe() { return detail::SetTraits<std::set<K, C, A>, K>::Describe("set"); }
};
template <typename K, typename H, typename E, typename A>
struct Traits<std::unordered_set<K, H, E, A>> : detail::SetTraits<std::unordered_set<K, H, E, A>, K> {
  static TypeDesc Describe() {
    return detail::SetTraits<std::unordered_set<K, H, E, A>, K>::Describe("unordered_set");
  }
};

// --- std::array --------------------------------------------------------------
template <typename T, std::size_t N>
struct Traits<std::array<T, N>> {
  static TypeDesc Describe() {
    TypeDesc d = detail::Node(TypeDesc::Kind::kArray, "array", {Traits<T>::Describe()});
    d.count = N;
    return d;
  }
  static void Save(Writer& w, const std::array<T, N>& v) {
    if constexpr (std::is_arithmetic_v<T>)
      detail::SaveArray(w, v.data(), N);
    else
      for (const auto& e : v) Traits<T>::Save(w, e);
  }
  static void Load(Reader& r, std::array<T, N>& v, const TypeDesc& img) {
    if constexpr (std::is_arithmetic_v<T>)
      detail::LoadArray(r, v.data(), N, img.args.at(0));
    else
      for (auto& e : v) Traits<T>::Load(r, e, img.args.at(0));
  }
};

// C arrays behave like std::array.
template <typename T, std::size_t N>
struct Traits<T[N]> {
  static TypeDesc Describe() { return Traits<std::array<T, N>>::Describe(); }
  static void Save(Writer& w, const T (&v)[N]) {
    if constexpr (std::is_arithmetic_v<T>)
      detail::SaveArray(w, v, N);
    else
      for (const auto& e : v) Traits<T>::Save(w, e);
  }
  static void Load(Reader& r, T (&v)[N], const TypeDesc& img) {
    if constexpr (std::is_arithmetic_v<T>)
      detail::LoadArray(r, v, N, img.args.at(0));
    else
      for (auto& e : v) Traits<T>::Load(r, e, img.args.at(0));
  }
};

// --- complex, bitset, unique_ptr, atomic --------------------------------------
template <typename T>
struct Traits<std::complex<T>> {
  static TypeDesc Describe() {
    TypeDesc d = detail::Node(TypeDesc::Kind::kArray, "complex", {Traits<T>::Describe()});
    d.count = 2;
    return d;
  }
  static void Save(Writer& w, const std::complex<T>& v) {
    Traits<T>::Save(w, v.real());
    Traits<T>::Save(w, v.imag());
  }
  static void Load(Reader& r, std::complex<T>& v, const TypeDesc& img) {
    T re{}, im{};
    Traits<T>::Load(r, re, img.args.at(0));
    Traits<T>::Load(r, im, img.args.at(0));
    v = std::complex<T>(re, im);
  }
};

template <std::size_t N>
struct Traits<std::bitset<N>> {
  static TypeDesc Describe() {
    TypeDesc d = detail::Node(TypeDesc::Kind::kArray, "bitset", {Traits<bool>::Describe()});
    d.count = N;
    return d;
  }
  static void Save(Writer& w, const std::bitset<N>& v) {
    for (std::size_t i = 0; i < N; ++i) w.U8(v[i] ? 1 : 0);
  }
  static void Load(Reader& r, std::bitset<N>& v, const TypeDesc& img) {
    for (std::size_t i = 0; i < N && r.ok(); ++i) {
      bool b = false;
      Traits<bool>::Load(r, b, img.args.at(0));
      v[i] = b;
    }
  }
};

// An owning pointer is stored like an optional of its pointee.
template <typename T>
struct Traits<std::unique_ptr<T>> {
  static TypeDesc Describe() {
    return detail::Node(TypeDesc::Kind::kOptional, "unique_ptr", {Traits<T>::Describe()});
  }
  static void Save(Writer& w, const std::unique_ptr<T>& v) {
    w.U8(v ? 1 : 0);
    if (v) Traits<T>::Save(w, *v);
  }
  static void Load(Reader& r, std::unique_ptr<T>& v, const TypeDesc& img) {
    std::uint8_t has = r.U8();
    if (has > 1) r.Fail("unique_ptr flag holds " + std::to_string(has));
    if (has == 1 && r.ok()) {
      v = std::make_unique<T>();
      Traits<T>::Load(r, *v, img.args.at(0));
    } else {
      v.reset();
    }
  }
};

// std::atomic<T> is stored as its value (load and store, sequentially consistent).
template <typename T>
struct Traits<std::atomic<T>> {
  static TypeDesc Describe() { return Traits<T>::Describe(); }
  static void Save(Writer& w, const std::atomic<T>& v) { Traits<T>::Save(w, v.load()); }
  static void Load(Reader& r, std::atomic<T>& v, const TypeDesc& img) {
    T x{};
    Traits<T>::Load(r, x, img);
    v.store(x);
  }
};

// --- optional, pair, tuple, variant ---------------------------------------
template <typename T>
struct Traits<std::optional<T>> {
  static TypeDesc Describe() {
    return detail::Node(TypeDesc::Kind::kOptional, "optional", {Traits<T>::Describe()});
  }
  static void Save(Writer& w, const std::optional<T>& v) {
    w.U8(v.has_value() ? 1 : 0);
    if (v) Traits<T>::Save(w, *v);
  }
  static void Load(Reader& r, std::optional<T>& v, const TypeDesc& img) {
    std::uint8_t has = r.U8();
    if (has > 1) r.Fail("optional flag holds " + std::to_string(has));
    if (has == 1 && r.ok()) {
      v.emplace();
      Traits<T>::Load(r, *v, img.args.at(0));
    } else {
      v.reset();
    }
  }
};

template <typename A, typename B>
struct Traits<std::pair<A, B>> {
  static TypeDesc Describe() {
    return detail::Node(TypeDesc::Kind::kPair, "pair", {Traits<A>::Describe(), Traits<B>::Describe()});
  }
  static void Save(Writer& w, const std::pair<A, B>& v) {
    Traits<std::remove_const_t<A>>::Save(w, v.first);
    Traits<B>::Save(w, v.second);
  }
  static void Load(Reader& r, std::pair<A, B>& v, const TypeDesc& img) {
    Traits<std::remove_const_t<A>>::Load(r, const_cast<std::remove_const_t<A>&>(v.first), img.args.at(0));
    Traits<B>::Load(r, v.second, img.args.at(1));
  }
};

template <typename... Ts>
struct Traits<std::tuple<Ts...>> {
  static TypeDesc Describe() {
    return detail::Node(TypeDesc::Kind::kTuple, "tuple", {Traits<Ts>::Describe()...});
  }
  static void Save(Writer& w, const std::tuple<Ts...>& v) {
    std::apply([&](const auto&... e) { (Traits<std::decay_t<decltype(e)>>::Save(w, e), ...); }, v);
  }
  static void Load(Reader& r, std::tuple<Ts...>& v, const TypeDesc& img) {
    LoadImpl(r, v, img, std::index_sequence_for<Ts...>{});
  }

 private:
  template <std::size_t... I>
  static void LoadImpl(Reader& r, std::tuple<Ts...>& v, const TypeDesc& img, std::index_sequence<I...>) {
    (Traits<Ts>::Load(r, std::get<I>(v), img.args.at(I)), ...);
  }
};

template <>
struct Traits<std::monostate> {
  static TypeDesc Describe() { return detail::Leaf(TypeDesc::Kind::kMonostate, 0, "monostate"); }
  static void Save(Writer&, const std::monostate&) {}
  static void Load(Reader&, std::monostate&, const TypeDesc&) {}
};

template <typename... Ts>
struct Traits<std::variant<Ts...>> {
  static TypeDesc Describe() {
    return detail::Node(TypeDesc::Kind::kVariant, "variant", {Traits<Ts>::Describe()...});
  }
  static void Save(Writer& w, const std::variant<Ts...>& v) {
    w.Varint(v.valueless_by_exception() ? 0 : v.index());
    std::visit([&](const auto& e) { Traits<std::decay_t<decltype(e)>>::Save(w, e); }, v);
  }
  static void Load(Reader& r, std::variant<Ts...>& v, const TypeDesc& img) {
    std::uint64_t idx = r.Varint();
    if (!r.ok()) return;
    if (idx >= sizeof...(Ts)) {
      r.Fail("variant index " + std::to_string(idx) + " out of range");
      return;
    }
    LoadAlt<0>(r, v, img, static_cast<std::size_t>(idx));
  }

 private:
  template <std::size_t I>
  static void LoadAlt(Reader& r, std::variant<Ts...>& v, const TypeDesc& img, std::size_t idx) {
    if constexpr (I < sizeof...(Ts)) {
      if (idx == I) {
        auto& e = v.template emplace<I>();
        Traits<std::variant_alternative_t<I, std::variant<Ts...>>>::Load(r, e, img.args.at(I));
      } else {
        LoadAlt<I + 1>(r, v, img, idx);
      }
    }
  }
};

}  // namespace ckpt

// Structs declared with CKPT_FIELDS, their versions and upgrades.
#include "ckpt/fields.hpp"
// Random engines and distributions; chrono, multi containers, adapters,
// wstring, and ckpt::Representation<T> for a program's own types.
#include "ckpt/more_types.hpp"
#include "ckpt/random.hpp"
