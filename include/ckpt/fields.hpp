// Structs made checkpointable with CKPT_FIELDS, and how their shape may
// change between the program that wrote an image and the one that resumes
// it: CKPT_VERSION, ckpt::Upgrade<T> (renamed fields, a conversion hook) and
// ckpt::OldFields (part of ckpt/serialize.hpp, which includes it; the rules
// are in docs/api.md, "State that evolves").
#pragma once

#include <concepts>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ckpt/serialize.hpp"

namespace ckpt {

// A field renamed since an older version of the program: the name it has in
// older images, and its name now.
struct Renamed {
  const char* from;
  const char* to;
};

// Upgrade<T>: specialize it, right after CKPT_FIELDS, for a struct whose
// fields changed in a way the rules alone do not convert. Both members are
// optional:
//
//   template <>
//   struct ckpt::Upgrade<Account> {
//     static constexpr ckpt::Renamed kRenamed[] = {{"holder", "owner"}};
//     // Runs after the rules loaded every field they could, whenever the
//     // image's Account differs from this program's (in version or fields);
//     // false refuses the image.
//     static bool Apply(const ckpt::OldFields& old, Account& now) {
//       std::uint8_t flags = 0;
//       if (old.get("flags", flags)) now.overdrafts = flags & 1;
//       return true;
//     }
//   };
template <typename T>
struct Upgrade;

// The fields of one struct value as an image holds them, for
// Upgrade<T>::Apply: every field of the image's version, including those the
// program no longer has or whose type changed.
class OldFields {
 public:
  explicit OldFields(std::uint32_t version) : version_(version) {}

  // The struct's CKPT_VERSION in the image (0 when that program declared none).
  std::uint32_t version() const { return version_; }
  // The image's field names, in its order.
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const Field& f : fields_) n.push_back(f.name);
    return n;
  }
  bool has(std::string_view name) const { return Find(name) != nullptr; }
  // The field's type in the image ("i32", "vector<f64>", ...), "" when absent.
  std::string type_of(std::string_view name) const {
    const Field* f = Find(name);
    return f == nullptr ? std::string() : f->desc.ToString();
  }
  // Loads the field's value into `out` under the rules of any resume
  // (integers of another width, float to double, containers of one family,
  // structs that evolved). False when the image has no such field, when its
  // type cannot become U, or when a value does not fit (out may then hold
  // part of it).
  template <typename U>
  bool get(std::string_view name, U& out) const {
    const Field* f = Find(name);
    if (f == nullptr) return false;
    TypeDesc img = f->desc;
    if (!detail::MatchType(&img, Traits<U>::Describe(), nullptr)) return false;
    StringReader r(f->bytes);
    Traits<U>::Load(r, out, img);
    return r.ok() && r.AtEnd();
  }

  // For the library: one field as read from the image.
  void Add(std::string name, TypeDesc desc, std::string bytes) {
    fields_.push_back(Field{std::move(name), std::move(desc), std::move(bytes)});
  }

 private:
  struct Field {
    std::string name;
    TypeDesc desc;
    std::string bytes;
  };
  const Field* Find(std::string_view name) const {
    for (const Field& f : fields_)
      if (f.name == name) return &f;
    return nullptr;
  }
  std::uint32_t version_;
  std::vector<Field> fields_;
};

namespace detail {

template <typename S, typename... M>
struct FieldList {
  const char* type_name;
  const char* field_names;  // "a, b, c" as written in the macro
  std::tuple<M S::*...> members;
};

template <typename S, typename... M>
constexpr FieldList<S, M...> MakeFields(const char* type, const char* names, M S::*... ptrs) {
  return FieldList<S, M...>{type, names, std::tuple<M S::*...>(ptrs...)};
}

std::vector<std::string> SplitFieldNames(const char* list);

template <typename T>
concept HasFields = requires {
  ckpt_fields(static_cast<const T*>(nullptr));
};

template <typename T>
concept HasVersion = requires {
  { ckpt_version(static_cast<const T*>(nullptr)) } -> std::convertible_to<std::uint32_t>;
};

template <typename T>
concept HasRenamed = requires {
  std::size(Upgrade<T>::kRenamed);
  { Upgrade<T>::kRenamed[0].from } -> std::convertible_to<const char*>;
};

template <typename T>
concept HasApply = requires(const OldFields& old, T& now) {
  Upgrade<T>::Apply(old, now);
};

}  // namespace detail

template <typename T>
struct Traits<T, std::enable_if_t<detail::HasFields<T>>> {
  static TypeDesc Describe() {
    auto fl = ckpt_fields(static_cast<const T*>(nullptr));
    TypeDesc d;
    d.kind = TypeDesc::Kind::kStruct;
    d.name = fl.type_name;
    d.fields = detail::SplitFieldNames(fl.field_names);
    std::apply([&](auto... mp) { (d.args.push_back(Traits<MemberType<decltype(mp)>>::Describe()), ...); },
               fl.members);
    if constexpr (detail::HasVersion<T>) d.version = ckpt_version(static_cast<const T*>(nullptr));
    if constexpr (detail::HasRenamed<T>) {
      for (const Renamed& x : Upgrade<T>::kRenamed) d.renamed.emplace_back(x.from, x.to);
    }
    d.upgradable = detail::HasApply<T>;
    return d;
  }
  static void Save(Writer& w, const T& v) {
    auto fl = ckpt_fields(static_cast<const T*>(nullptr));
    std::apply([&](auto... mp) { (Traits<MemberType<decltype(mp)>>::Save(w, v.*mp), ...); }, fl.members);
  }
  static void Load(Reader& r, T& v, const TypeDesc& img) {
    auto fl = ckpt_fields(static_cast<const T*>(nullptr));
    if (img.evolve) {
      LoadEvolved(r, v, img, fl);
      return;
    }
    std::size_t i = 0;
    std::apply([&](auto... mp) { (Traits<MemberType<decltype(mp)>>::Load(r, v.*mp, img.args.at(i++)), ...); },
               fl.members);
  }

 private:
  template <typename MP>
  struct MemberOf;
  template <typename S, typename M>
  struct MemberOf<M S::*> {
    using type = M;
  };
  template <typename MP>
  using MemberType = typename MemberOf<MP>::type;

  // Loads the program's field number j from data of type d.
  template <typename FL>
  static void LoadField(Reader& r, T& v, const FL& fl, int j, const TypeDesc& d) {
    int k = 0;
    std::apply(
        [&](auto... mp) { ((k++ == j ? Traits<MemberType<decltype(mp)>>::Load(r, v.*mp, d) : void()), ...); },
        fl.members);
  }

  // The image's struct differs from the program's: fields go where the
  // field map says, the others are read past; the upgrade hook sees them all.
  template <typename FL>
  static void LoadEvolved(Reader& r, T& v, const TypeDesc& img, const FL& fl) {
    if (img.field_map.size() != img.args.size() || img.fields.size() != img.args.size()) {
      r.Fail("the field map of " + img.name + " is missing");
      return;
    }
    OldFields old(img.version);
    for (std::size_t i = 0; i < img.args.size() && r.ok(); ++i) {
      const int j = img.field_map[i];
      if (!img.run_upgrade) {
        if (j >= 0)
          LoadField(r, v, fl, j, img.args[i]);
        else
          detail::SkipValue(r, img.args[i]);
        continue;
      }
      std::string bytes;
      detail::SkipValue(r, img.args[i], &bytes);
      if (!r.ok()) return;
      if (j >= 0) {
        StringReader fr(bytes);
        LoadField(fr, v, fl, j, img.args[i]);
        if (!fr.ok()) r.Fail(fr.error());
      }
      old.Add(img.fields[i], img.args[i], std::move(bytes));
    }
    if constexpr (detail::HasApply<T>) {
      if (!img.run_upgrade || !r.ok()) return;
      bool accepted = true;
      if constexpr (std::is_void_v<decltype(Upgrade<T>::Apply(old, v))>)
        Upgrade<T>::Apply(old, v);
      else
        accepted = static_cast<bool>(Upgrade<T>::Apply(old, v));
      if (!accepted) {
        r.Fail("ckpt::Upgrade<" + img.name + ">::Apply refused the image's value (" + img.name + " version " +
               std::to_string(img.version) + ")");
      }
    }
  }
};

}  // namespace ckpt

// ---------------------------------------------------------------------------
// CKPT_FIELDS(Type, field, ...): makes a struct checkpointable. Write it at
// namespace scope after the struct (or CKPT_FRIEND_FIELDS inside the class for
// private members). Up to 32 fields.
#define CKPT_PP_NARG(...) CKPT_PP_NARG_(__VA_ARGS__, CKPT_PP_RSEQ())
#define CKPT_PP_NARG_(...) CKPT_PP_ARG_N(__VA_ARGS__)
#define CKPT_PP_ARG_N(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, \
                      _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, N, ...)              \
  N
#define CKPT_PP_RSEQ()                                                                                       \
  32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, \
      4, 3, 2, 1, 0
#define CKPT_PP_CAT(a, b) CKPT_PP_CAT_(a, b)
#define CKPT_PP_CAT_(a, b) a##b
#define CKPT_MP_1(T, a) &T::a
#define CKPT_MP_2(T, a, ...) &T::a, CKPT_MP_1(T, __VA_ARGS__)
#define CKPT_MP_3(T, a, ...) &T::a, CKPT_MP_2(T, __VA_ARGS__)
#define CKPT_MP_4(T, a, ...) &T::a, CKPT_MP_3(T, __VA_ARGS__)
#define CKPT_MP_5(T, a, ...) &T::a, CKPT_MP_4(T, __VA_ARGS__)
#define CKPT_MP_6(T, a, ...) &T::a, CKPT_MP_5(T, __VA_ARGS__)
#define CKPT_MP_7(T, a, ...) &T::a, CKPT_MP_6(T, __VA_ARGS__)
#define CKPT_MP_8(T, a, ...) &T::a, CKPT_MP_7(T, __VA_ARGS__)
#define CKPT_MP_9(T, a, ...) &T::a, CKPT_MP_8(T, __VA_ARGS__)
#define CKPT_MP_10(T, a, ...) &T::a, CKPT_MP_9(T, __VA_ARGS__)
#define CKPT_MP_11(T, a, ...) &T::a, CKPT_MP_10(T, __VA_ARGS__)
#define CKPT_MP_12(T, a, ...) &T::a, CKPT_MP_11(T, __VA_ARGS__)
#define CKPT_MP_13(T, a, ...) &T::a, CKPT_MP_12(T, __VA_ARGS__)
#define CKPT_MP_14(T, a, ...) &T::a, CKPT_MP_13(T, __VA_ARGS__)
#define CKPT_MP_15(T, a, ...) &T::a, CKPT_MP_14(T, __VA_ARGS__)
#define CKPT_MP_16(T, a, ...) &T::a, CKPT_MP_15(T, __VA_ARGS__)
#define CKPT_MP_17(T, a, ...) &T::a, CKPT_MP_16(T, __VA_ARGS__)
#define CKPT_MP_18(T, a, ...) &T::a, CKPT_MP_17(T, __VA_ARGS__)
#define CKPT_MP_19(T, a, ...) &T::a, CKPT_MP_18(T, __VA_ARGS__)
#define CKPT_MP_20(T, a, ...) &T::a, CKPT_MP_19(T, __VA_ARGS__)
#define CKPT_MP_21(T, a, ...) &T::a, CKPT_MP_20(T, __VA_ARGS__)
#define CKPT_MP_22(T, a, ...) &T::a, CKPT_MP_21(T, __VA_ARGS__)
#define CKPT_MP_23(T, a, ...) &T::a, CKPT_MP_22(T, __VA_ARGS__)
#define CKPT_MP_24(T, a, ...) &T::a, CKPT_MP_23(T, __VA_ARGS__)
#define CKPT_MP_25(T, a, ...) &T::a, CKPT_MP_24(T, __VA_ARGS__)
#define CKPT_MP_26(T, a, ...) &T::a, CKPT_MP_25(T, __VA_ARGS__)
#define CKPT_MP_27(T, a, ...) &T::a, CKPT_MP_26(T, __VA_ARGS__)
#define CKPT_MP_28(T, a, ...) &T::a, CKPT_MP_27(T, __VA_ARGS__)
#define CKPT_MP_29(T, a, ...) &T::a, CKPT_MP_28(T, __VA_ARGS__)
#define CKPT_MP_30(T, a, ...) &T::a, CKPT_MP_29(T, __VA_ARGS__)
#define CKPT_MP_31(T, a, ...) &T::a, CKPT_MP_30(T, __VA_ARGS__)
#define CKPT_MP_32(T, a, ...) &T::a, CKPT_MP_31(T, __VA_ARGS__)
#define CKPT_MEMBER_PTRS(T, ...) CKPT_PP_CAT(CKPT_MP_, CKPT_PP_NARG(__VA_ARGS__))(T, __VA_ARGS__)

#define CKPT_FIELDS(Type, ...)                                                                         \
  [[maybe_unused]] inline auto ckpt_fields(const Type*) {                                              \
    return ::ckpt::detail::MakeFields<Type>(#Type, #__VA_ARGS__, CKPT_MEMBER_PTRS(Type, __VA_ARGS__)); \
  }
// CKPT_VERSION(Type, N): the version of a CKPT_FIELDS struct's shape (N >= 1),
// stored in images as Type@N{...}. A program reads images of its version or
// older ones, never newer ones; ckpt::Upgrade<Type> converts what the rules
// do not. Write it at namespace scope beside CKPT_FIELDS.
#define CKPT_VERSION(Type, N)                                                           \
  [[maybe_unused]] inline constexpr ::std::uint32_t ckpt_version(const Type*) {         \
    static_assert((N) >= 1 && (N) <= 0xffffffffu, "CKPT_VERSION: N must be 1 or more"); \
    return static_cast<::std::uint32_t>(N);                                             \
  }
#define CKPT_FRIEND_FIELDS(Type, ...)                                                                  \
  friend auto ckpt_fields(const Type*) {                                                               \
    return ::ckpt::detail::MakeFields<Type>(#Type, #__VA_ARGS__, CKPT_MEMBER_PTRS(Type, __VA_ARGS__)); \
  }
