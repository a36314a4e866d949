// Tagged records: the encoding of the process image's metadata sections
// (docs/image-format.md, "Section encoding"). A record is a sequence of
// fields, each a varint key — tag << 3 | critical << 2 | wire type — and its
// value; a reader skips fields whose tag it does not know unless their key
// has the critical bit, fields may come in any order, and a field absent
// from the record keeps its default.
//
// One field list per struct drives both directions: a function found by
// argument-dependent lookup,
//
//   template <class IO> void Fields(IO& io, Rlimit& l) {
//     io(1, "cur", l.cur);
//     io(2, "max", l.max);
//   }
//
// that names every stored member with its tag (never reused), a name for
// messages and options (Max{n}: at most n elements; kCritical: a reader
// that does not know the field must refuse the record). It calls io the
// same way every time (no conditions), at most kMaxFields times. Member
// types: integers, bool, enums, std::string (bytes), std::vector or
// std::array of integers (packed), std::vector<std::string>, std::vector
// or std::array of records, and records (any other struct with Fields).
//
// A value equal to a zero default (0, false, empty) is not written. The
// writer reads through a const_cast; it never modifies. Stateless helpers,
// thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "util/bytes.h"
#include "util/status.h"

namespace ckpt::engine::tagged {

enum class Wire : std::uint8_t { kVarint = 0, kFixed64 = 1, kBytes = 2 };

inline constexpr std::uint64_t kCriticalBit = 1u << 2;
inline constexpr std::uint32_t kMaxTag = (1u << 28) - 1;
inline constexpr int kMaxFields = 64;  // io calls per field list

// Field options.
struct Max {
  std::uint64_t n;
};
struct Critical {};
inline constexpr Critical kCritical{};

struct Options {
  std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  bool critical = false;
};
constexpr void Apply(Options& o, Max m) {
  o.max = m.n;
}
constexpr void Apply(Options& o, Critical) {
  o.critical = true;
}
template <class... O>
constexpr Options MakeOptions(O... o) {
  Options r;
  (Apply(r, o), ...);
  return r;
}

// One field as read.
struct Field {
  std::uint32_t tag = 0;
  Wire wire = Wire::kVarint;
  bool critical = false;
  std::uint64_t num = 0;   // kVarint, kFixed64
  std::string_view bytes;  // kBytes
};

// Writes a key; a number as a varint, or as fixed64 where the varint would
// be longer (`as_varint` >= 2^56); bytes with their varint length.
void PutKey(std::string* o, std::uint32_t tag, Wire w, bool critical);
void PutNumber(std::string* o, std::uint32_t tag, std::uint64_t as_varint, std::uint64_t as_fixed64,
               bool critical);
void PutBytes(std::string* o, std::uint32_t tag, std::string_view b, bool critical);

// Reads the fields of a record one after another, bounds-checked.
class FieldReader {
 public:
  explicit FieldReader(std::string_view in) : r_(in) {}
  // The next field: false at the end of the record, or on malformed input
  // (then error() says what).
  bool Next(Field* f);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string why);
  ByteReader r_;
  std::string error_;
};

// Where a record is, for messages: a section, or a field of a record in it.
struct Where {
  const char* section;
  const Where* parent = nullptr;
  const char* name = nullptr;  // the field of `parent` that holds this record
};
// "malformed SECTION section in process image: [in PATH: ]WHY" (kCorruption).
Status Malformed(const Where& w, const std::string& why);
// "SECTION section: field TAG [of PATH ]is required by the image but unknown
// to this ckpt (image written by a newer ckpt)" (kNotSupported).
Status UnknownCritical(const Where& w, std::uint32_t tag);

// Type classes of members.
template <class T>
struct VectorOf : std::false_type {};
template <class T, class A>
struct VectorOf<std::vector<T, A>> : std::true_type {
  using Elem = T;
};
template <class T>
struct ArrayOf : std::false_type {};
template <class T, std::size_t N>
struct ArrayOf<std::array<T, N>> : std::true_type {
  using Elem = T;
  static constexpr std::size_t kSize = N;
};
template <class T>
inline constexpr bool kIsNumber = std::is_integral_v<T> || std::is_enum_v<T>;
template <class T>
inline constexpr bool kIsString = std::is_same_v<T, std::string>;
template <class T>
inline constexpr bool kIsRecord =
    std::is_class_v<T> && !kIsString<T> && !VectorOf<T>::value && !ArrayOf<T>::value;
template <class T>
constexpr bool IsPacked() {
  if constexpr (VectorOf<T>::value) return kIsNumber<typename VectorOf<T>::Elem>;
  if constexpr (ArrayOf<T>::value) return kIsNumber<typename ArrayOf<T>::Elem>;
  return false;
}
// Each element its own occurrence of the field.
template <class T>
constexpr bool IsRepeated() {
  if constexpr (VectorOf<T>::value) return !kIsNumber<typename VectorOf<T>::Elem>;
  if constexpr (ArrayOf<T>::value) return kIsRecord<typename ArrayOf<T>::Elem>;
  return false;
}

template <class T, bool = std::is_enum_v<T>>
struct NumOf {
  using type = T;
};
template <class T>
struct NumOf<T, true> {
  using type = std::underlying_type_t<T>;
};

// The varint a number is written as (signed: zigzag), and its fixed64.
template <class T>
std::uint64_t VarintOf(T v) {
  using N = typename NumOf<T>::type;
  auto n = static_cast<N>(v);
  if constexpr (std::is_signed_v<N>) {
    auto s = static_cast<std::int64_t>(n);
    return (static_cast<std::uint64_t>(s) << 1) ^ static_cast<std::uint64_t>(s >> 63);
  } else {
    return static_cast<std::uint64_t>(n);
  }
}
template <class T>
std::uint64_t Fixed64Of(T v) {
  using N = typename NumOf<T>::type;
  return static_cast<std::uint64_t>(
      static_cast<std::conditional_t<std::is_signed_v<N>, std::int64_t, N>>(static_cast<N>(v)));
}
// A number read as `w`; false if it does not fit T.
template <class T>
bool NumberFrom(Wire w, std::uint64_t raw, T* out) {
  using N = typename NumOf<T>::type;
  if constexpr (std::is_same_v<N, bool>) {
    if (raw > 1) return false;
    *out = static_cast<T>(raw != 0);
  } else if constexpr (std::is_signed_v<N>) {
    std::int64_t s = w == Wire::kVarint
                         ? static_cast<std::int64_t>(raw >> 1) ^ -static_cast<std::int64_t>(raw & 1)
                         : static_cast<std::int64_t>(raw);
    if (s < std::numeric_limits<N>::min() || s > std::numeric_limits<N>::max()) return false;
    *out = static_cast<T>(static_cast<N>(s));
  } else {
    if (raw > std::numeric_limits<N>::max()) return false;
    *out = static_cast<T>(static_cast<N>(raw));
  }
  return true;
}

// Calls the struct's own field list.
struct RecordFields {
  template <class IO, class T>
  void operator()(IO& io, T& x) const {
    Fields(io, x);
  }
};

template <class T, class F = RecordFields>
void AppendFields(std::string* out, const T& x, F fields = {});
template <class T, class F = RecordFields>
Status DecodeFields(std::string_view in, const Where& where, T* x, F fields = {});

template <class T>
std::string RecordBody(const T& x) {
  std::string o;
  AppendFields(&o, x);
  return o;
}

// A value at its zero: not written when its default is zero too.
template <class T>
bool IsZero(const T& v) {
  if constexpr (kIsNumber<T>) {
    return VarintOf(v) == 0;
  } else if constexpr (kIsString<T> || VectorOf<T>::value) {
    return v.empty();
  } else if constexpr (ArrayOf<T>::value) {
    for (const auto& e : v)
      if (!IsZero(e)) return false;
    return true;
  } else {
    return RecordBody(v).empty();
  }
}

// Runs over a default value: which fields may be left out at zero; checks
// the field list itself (tags unique and in range, at most kMaxFields).
class ZeroProbe {
 public:
  template <class T, class... O>
  void operator()(std::uint32_t tag, const char*, T& v, O...) {
    int i = index_++;
    if (i >= kMaxFields || tag == 0 || tag > kMaxTag) {
      ok_ = false;
      return;
    }
    for (int j = 0; j < i; ++j) ok_ = ok_ && tags_[j] != tag;
    tags_[i] = tag;
    if (IsZero(v)) mask_ |= std::uint64_t{1} << i;
  }
  bool ok() const { return ok_; }
  std::uint64_t mask() const { return mask_; }

 private:
  int index_ = 0;
  bool ok_ = true;
  std::uint64_t mask_ = 0;
  std::array<std::uint32_t, kMaxFields> tags_{};
};

// A broken field list is a bug of this ckpt: it stops here.
[[noreturn]] void BadFieldList();

template <class F, class T>
std::uint64_t ZeroDefaults() {
  static const std::uint64_t mask = [] {
    T d{};
    ZeroProbe p;
    F{}(p, d);
    if (!p.ok()) BadFieldList();
    return p.mask();
  }();
  return mask;
}

class Encoder {
 public:
  Encoder(std::string* out, std::uint64_t zero_defaults) : out_(out), zero_defaults_(zero_defaults) {}
  template <class T, class... O>
  void operator()(std::uint32_t tag, const char*, T& v, O... o) {
    int i = index_++;
    Put(tag, v, MakeOptions(o...).critical, ((zero_defaults_ >> i) & 1) != 0);
  }

 private:
  template <class T>
  void Put(std::uint32_t tag, const T& v, bool critical, bool omit_zero) {
    if constexpr (kIsNumber<T>) {
      if (!omit_zero || VarintOf(v) != 0) PutNumber(out_, tag, VarintOf(v), Fixed64Of(v), critical);
    } else if constexpr (kIsString<T>) {
      if (!omit_zero || !v.empty()) PutBytes(out_, tag, v, critical);
    } else if constexpr (IsPacked<T>()) {
      if (omit_zero && IsZero(v)) return;
      std::string body;
      for (auto e : v) PutVarint(&body, VarintOf(e));
      PutBytes(out_, tag, body, critical);
    } else if constexpr (IsRepeated<T>()) {
      if (omit_zero && IsZero(v)) return;
      for (const auto& e : v) {
        if constexpr (kIsString<std::decay_t<decltype(e)>>) {
          PutBytes(out_, tag, e, critical);
        } else {
          PutBytes(out_, tag, RecordBody(e), critical);
        }
      }
    } else {
      static_assert(kIsRecord<T>, "unsupported member type in a field list");
      std::string body = RecordBody(v);
      if (!omit_zero || !body.empty()) PutBytes(out_, tag, body, critical);
    }
  }
  std::string* out_;
  std::uint64_t zero_defaults_;
  int index_ = 0;
};

template <class T, class F>
void AppendFields(std::string* out, const T& x, F fields) {
  Encoder e(out, ZeroDefaults<F, T>());
  fields(e, const_cast<T&>(x));
}

using Counts = std::array<std::uint32_t, kMaxFields>;

// Decodes the one field `f` into the member of the field list with its tag.
class Decoder {
 public:
  Decoder(const Field& f, const Where& where, Counts* counts) : f_(f), where_(where), counts_(counts) {}
  template <class T, class... O>
  void operator()(std::uint32_t tag, const char* name, T& v, O... o) {
    int i = index_++;  // < kMaxFields: DecodeFields checked the list
    if (matched_ || tag != f_.tag) return;
    matched_ = true;
    status_ = Get(name, v, MakeOptions(o...), ++(*counts_)[i]);
  }
  bool matched() const { return matched_; }
  Status status() const { return status_; }

 private:
  Status Bad(const char* name, const std::string& why) const {
    return Malformed(where_, "field " + std::to_string(f_.tag) + " (" + name + ") " + why);
  }
  template <class T>
  Status Get(const char* name, T& v, const Options& o, std::uint32_t n) {
    if constexpr (IsRepeated<T>()) {
      if (f_.wire != Wire::kBytes) return Bad(name, "has the wrong wire type");
      if (n > o.max) return Bad(name, "has more than " + std::to_string(o.max) + " elements");
      if constexpr (ArrayOf<T>::value) {
        if (n > ArrayOf<T>::kSize)
          return Bad(name, "has more than " + std::to_string(v.size()) + " elements");
        return Element(name, v[n - 1]);
      } else {
        return Element(name, v.emplace_back());
      }
    } else {
      if (n > 1) return Bad(name, "appears twice");
      if constexpr (kIsNumber<T>) {
        if (f_.wire == Wire::kBytes) return Bad(name, "has the wrong wire type");
        if (!NumberFrom(f_.wire, f_.num, &v)) return Bad(name, "is out of range");
        return Status::Ok();
      } else if constexpr (kIsString<T>) {
        if (f_.wire != Wire::kBytes) return Bad(name, "has the wrong wire type");
        v.assign(f_.bytes);
        return Status::Ok();
      } else if constexpr (IsPacked<T>()) {
        return Packed(name, v, o);
      } else {
        return Element(name, v);
      }
    }
  }
  // A string or a nested record.
  template <class E>
  Status Element(const char* name, E& e) {
    if (f_.wire != Wire::kBytes) return Bad(name, "has the wrong wire type");
    if constexpr (kIsString<E>) {
      e.assign(f_.bytes);
      return Status::Ok();
    } else {
      return DecodeFields(f_.bytes, Where{where_.section, &where_, name}, &e);
    }
  }
  template <class T>
  Status Packed(const char* name, T& v, const Options& o) {
    if (f_.wire != Wire::kBytes) return Bad(name, "has the wrong wire type");
    ByteReader r(f_.bytes);
    std::uint64_t n = 0, limit = o.max;
    if constexpr (VectorOf<T>::value) {
      v.clear();
    } else {
      limit = v.size();
    }
    while (!r.empty()) {
      std::uint64_t raw = r.Varint();
      if (!r.ok()) return Bad(name, "is truncated");
      if (++n > limit) return Bad(name, "has more than " + std::to_string(limit) + " elements");
      std::decay_t<decltype(v[0])> e{};
      if (!NumberFrom(Wire::kVarint, raw, &e)) return Bad(name, "has an element out of range");
      if constexpr (VectorOf<T>::value) {
        v.push_back(e);
      } else {
        v[n - 1] = e;
      }
    }
    if (ArrayOf<T>::value && n != static_cast<std::uint64_t>(v.size()))
      return Bad(name, "has " + std::to_string(n) + " elements, not " + std::to_string(v.size()));
    return Status::Ok();
  }

  const Field& f_;
  const Where& where_;
  Counts* counts_;
  int index_ = 0;
  bool matched_ = false;
  Status status_;
};

// After a record: an array of records has all its elements or none.
class Finisher {
 public:
  Finisher(const Where& where, const Counts& counts) : where_(where), counts_(counts) {}
  template <class T, class... O>
  void operator()(std::uint32_t tag, const char* name, T& v, O...) {
    int i = index_++;
    if constexpr (ArrayOf<T>::value && IsRepeated<T>()) {
      if (counts_[i] != 0 && counts_[i] != v.size() && status_.ok()) {
        status_ =
            Malformed(where_, "field " + std::to_string(tag) + " (" + name + ") has " +
                                  std::to_string(counts_[i]) + " elements, not " + std::to_string(v.size()));
      }
    }
  }
  Status status() const { return status_; }

 private:
  const Where& where_;
  const Counts& counts_;
  int index_ = 0;
  Status status_;
};

template <class T, class F>
Status DecodeFields(std::string_view in, const Where& where, T* x, F fields) {
  (void)ZeroDefaults<F, T>();  // checks the field list once
  FieldReader r(in);
  Counts counts{};
  Field f;
  while (r.Next(&f)) {
    Decoder d(f, where, &counts);
    fields(d, *x);
    RETURN_IF_ERROR(d.status());
    if (!d.matched() && f.critical) return UnknownCritical(where, f.tag);
  }
  if (!r.ok()) return Malformed(where, r.error());
  Finisher fin(where, counts);
  fields(fin, *x);
  return fin.status();
}

}  // namespace ckpt::engine::tagged
