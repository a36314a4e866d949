// ckpt::Traits for std::chrono durations and system_clock time points,
// multimap/multiset (ordered and unordered), the container adapters (stack,
// queue, priority_queue) and std::wstring; and ckpt::Representation<T>, the
// public way to make a program's own type checkpointable (part of
// ckpt/serialize.hpp, which includes it).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <map>
#include <queue>
#include <ratio>
#include <set>
#include <stack>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "ckpt/serialize.hpp"

namespace ckpt {

// ---------------------------------------------------------------------------
// Representation<T>: makes a type checkpointable through a value of a type
// ckpt already knows (a number, a string, a container, a CKPT_FIELDS struct,
// even another Representation). Specialize it for your type:
//
//   template <>
//   struct ckpt::Representation<Money> {
//     static constexpr const char* kName = "Money";   // the type's name in images
//     using Type = std::int64_t;                      // what is stored
//     static Type Save(const Money& m) { return m.cents(); }
//     static bool Load(Type&& cents, Money& m) {      // false: the image's value is refused
//       m = Money::FromCents(cents);
//       return true;
//     }
//   };
//
// kName may instead be `static std::string Name()`; Load may return void.
// The image records the type as `Money{value:i64}`: a resume whose program
// calls the type something else, or stores another Type, is refused with the
// same message as any other type mismatch.
template <typename T>
struct Representation;

namespace detail {

template <typename T>
concept HasRepresentation = requires {
  typename Representation<T>::Type;
};

template <typename T>
std::string RepresentationName() {
  using R = Representation<T>;
  if constexpr (requires { R::Name(); })
    return std::string(R::Name());
  else
    return std::string(R::kName);
}

}  // namespace detail

template <typename T>
struct Traits<T, std::enable_if_t<detail::HasRepresentation<T>>> {
  using R = Representation<T>;
  using Rep = std::remove_cvref_t<typename R::Type>;
  static TypeDesc Describe() {
    TypeDesc d =
        detail::Node(TypeDesc::Kind::kStruct, detail::RepresentationName<T>(), {Traits<Rep>::Describe()});
    d.fields = {"value"};
    return d;
  }
  static void Save(Writer& w, const T& v) { Traits<Rep>::Save(w, static_cast<Rep>(R::Save(v))); }
  static void Load(Reader& r, T& v, const TypeDesc& img) {
    Rep rep{};
    if (img.evolve) {  // an image whose struct has other fields beside `value`
      bool found = false;
      for (std::size_t i = 0; i < img.args.size() && i < img.field_map.size() && r.ok(); ++i) {
        if (img.field_map[i] == 0 && !found) {
          Traits<Rep>::Load(r, rep, img.args[i]);
          found = true;
        } else {
          detail::SkipValue(r, img.args[i]);
        }
      }
      if (!found) r.Fail("the image's " + detail::RepresentationName<T>() + " has no field 'value'");
    } else {
      Traits<Rep>::Load(r, rep, img.args.at(0));
    }
    if (!r.ok()) return;
    if constexpr (std::is_same_v<decltype(R::Load(std::move(rep), v)), bool>) {
      if (!R::Load(std::move(rep), v))
        r.Fail("the image's " + detail::RepresentationName<T>() +
               " value was refused by its Representation::Load");
    } else {
      R::Load(std::move(rep), v);
    }
  }
};

// --- std::chrono -------------------------------------------------------------
// A duration is stored as its count, named by its period
// (`chrono::milliseconds{value:i64}`): a resume whose program changed the
// period is a type mismatch, never a silent rescaling.
namespace detail {

template <typename P>
std::string PeriodName() {
  if constexpr (std::is_same_v<P, std::nano>)
    return "nanoseconds";
  else if constexpr (std::is_same_v<P, std::micro>)
    return "microseconds";
  else if constexpr (std::is_same_v<P, std::milli>)
    return "milliseconds";
  else if constexpr (std::is_same_v<P, std::ratio<1>>)
    return "seconds";
  else if constexpr (std::is_same_v<P, std::ratio<60>>)
    return "minutes";
  else if constexpr (std::is_same_v<P, std::ratio<3600>>)
    return "hours";
  else if constexpr (std::is_same_v<P, std::ratio<86400>>)
    return "days";
  else
    return "duration_" + std::to_string(P::num) + "_" + std::to_string(P::den);
}

}  // namespace detail

template <typename Rep, typename Period>
struct Representation<std::chrono::duration<Rep, Period>> {
  static std::string Name() { return "chrono::" + detail::PeriodName<typename Period::type>(); }
  using Type = Rep;
  static Rep Save(const std::chrono::duration<Rep, Period>& d) { return d.count(); }
  static void Load(Rep&& n, std::chrono::duration<Rep, Period>& d) {
    d = std::chrono::duration<Rep, Period>(n);
  }
};

// A system_clock time point is stored as its duration since the epoch
// (1970-01-01 UTC on every platform since C++20). steady_clock and the other
// clocks start at an unspecified moment (the boot, on Linux): their time
// points mean nothing in a process resumed on another machine or after a
// reboot, so they are refused at compile time.
template <typename Clock, typename Dur>
struct Representation<std::chrono::time_point<Clock, Dur>> {
  static_assert(std::is_same_v<Clock, std::chrono::system_clock>,
                "ckpt: only std::chrono::system_clock time points can be checkpointed: another clock's "
                "time points (steady_clock counts from the boot) mean nothing after a resume on another "
                "machine; store the time left as a duration, or a system_clock time point");
  static constexpr const char* kName = "chrono::system_time";
  using Type = Dur;
  static Dur Save(const std::chrono::time_point<Clock, Dur>& t) { return t.time_since_epoch(); }
  static void Load(Dur&& d, std::chrono::time_point<Clock, Dur>& t) {
    t = std::chrono::time_point<Clock, Dur>(d);
  }
};

// --- multimap, multiset -------------------------------------------------------
template <typename K, typename V, typename C, typename A>
struct Traits<std::multimap<K, V, C, A>> : detail::MapTraits<std::multimap<K, V, C, A>, K, V, true> {
  static TypeDesc Describe() {
    return detail::MapTraits<std::multimap<K, V, C, A>, K, V, true>::Describe("multimap");
  }
};
template <typename K, typename V, typename H, typename E, typename A>
struct Traits<std::unordered_multimap<K, V, H, E, A>>
    : detail::MapTraits<std::unordered_multimap<K, V, H, E, A>, K, V, true> {
  static TypeDesc Describe() {
    return detail::MapTraits<std::unordered_multimap<K, V, H, E, A>, K, V, true>::Describe(
        "unordered_multimap");
  }
};
template <typename K, typename C, typename A>
struct Traits<std::multiset<K, C, A>> : detail::SetTraits<std::multiset<K, C, A>, K, true> {
  static TypeDesc Describe() {
    return detail::SetTraits<std::multiset<K, C, A>, K, true>::Describe("multiset");
  }
};
template <typename K, typename H, typename E, typename A>
struct Traits<std::unordered_multiset<K, H, E, A>>
    : detail::SetTraits<std::unordered_multiset<K, H, E, A>, K, true> {
  static TypeDesc Describe() {
    return detail::SetTraits<std::unordered_multiset<K, H, E, A>, K, true>::Describe("unordered_multiset");
  }
};

// --- stack, queue, priority_queue ------------------------------------------------
// Stored as their container, in its order: a priority_queue comes back with
// the same heap, so equal elements pop in the same order as they would have.
namespace detail {

template <typename A>
struct AdapterAccess : A {
  static auto& Get(A& a) { return a.*(&AdapterAccess::c); }
  static const auto& Get(const A& a) { return a.*(&AdapterAccess::c); }
};

template <typename A>
struct AdapterTraits {
  using C = typename A::container_type;
  static TypeDesc Describe(const char* name) {
    return Node(TypeDesc::Kind::kSeq, name, {Traits<typename A::value_type>::Describe()});
  }
  static void Save(Writer& w, const A& a) { Traits<C>::Save(w, AdapterAccess<A>::Get(a)); }
  static void Load(Reader& r, A& a, const TypeDesc& img) {
    Traits<C>::Load(r, AdapterAccess<A>::Get(a), img);
  }
};

}  // namespace detail

template <typename T, typename C>
struct Traits<std::stack<T, C>> : detail::AdapterTraits<std::stack<T, C>> {
  static TypeDesc Describe() { return detail::AdapterTraits<std::stack<T, C>>::Describe("stack"); }
};
template <typename T, typename C>
struct Traits<std::queue<T, C>> : detail::AdapterTraits<std::queue<T, C>> {
  static TypeDesc Describe() { return detail::AdapterTraits<std::queue<T, C>>::Describe("queue"); }
};
template <typename T, typename C, typename Cmp>
struct Traits<std::priority_queue<T, C, Cmp>> : detail::AdapterTraits<std::priority_queue<T, C, Cmp>> {
  static TypeDesc Describe() {
    return detail::AdapterTraits<std::priority_queue<T, C, Cmp>>::Describe("priority_queue");
  }
};

// --- std::wstring ---------------------------------------------------------------
// Stored as Unicode code points, 32 bits each (`wstring`), whatever the
// platform's wchar_t: Windows' UTF-16 surrogate pairs become one code point
// and code points above U+FFFF become a pair again there. (A lone surrogate
// is kept as it is.)
template <typename A>
struct Traits<std::basic_string<wchar_t, std::char_traits<wchar_t>, A>> {
  using S = std::basic_string<wchar_t, std::char_traits<wchar_t>, A>;
  static constexpr bool kUtf16 = sizeof(wchar_t) == 2;
  static TypeDesc Describe() {
    return detail::Node(TypeDesc::Kind::kSeq, "wstring", {Traits<wchar_t>::Describe()});
  }
  static void Save(Writer& w, const S& s) {
    std::size_t n = s.size();
    if constexpr (kUtf16) {
      for (std::size_t i = 0; i + 1 < s.size(); ++i)
        if (Pair(s[i], s[i + 1])) --n, ++i;
    }
    w.Varint(n);
    for (std::size_t i = 0; i < s.size(); ++i) {
      std::uint32_t cp = static_cast<std::uint32_t>(s[i]) & (kUtf16 ? 0xffffu : 0xffffffffu);
      if constexpr (kUtf16) {
        if (i + 1 < s.size() && Pair(s[i], s[i + 1])) {
          cp = 0x10000u + ((cp - 0xd800u) << 10) + (static_cast<std::uint32_t>(s[i + 1]) - 0xdc00u);
          ++i;
        }
      }
      w.Fixed(cp);
    }
  }
  static void Load(Reader& r, S& s, const TypeDesc&) {
    std::uint64_t n = r.Count(4);
    s.clear();
    for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
      std::uint32_t cp = r.Fixed<std::uint32_t>();
      if constexpr (kUtf16) {
        if (cp > 0x10ffffu) {
          r.Fail("wstring code point " + std::to_string(cp) + " does not fit this platform's UTF-16 wchar_t");
          return;
        }
        if (cp >= 0x10000u) {
          s.push_back(static_cast<wchar_t>(0xd800u + ((cp - 0x10000u) >> 10)));
          s.push_back(static_cast<wchar_t>(0xdc00u + ((cp - 0x10000u) & 0x3ffu)));
          continue;
        }
      } else if (cp > static_cast<std::uint32_t>(std::numeric_limits<wchar_t>::max())) {
        r.Fail("wstring code point " + std::to_string(cp) + " does not fit this platform's wchar_t");
        return;
      }
      s.push_back(static_cast<wchar_t>(cp));
    }
  }

 private:
  static bool Pair(wchar_t hi, wchar_t lo) {
    auto h = static_cast<std::uint32_t>(hi) & 0xffffu, l = static_cast<std::uint32_t>(lo) & 0xffffu;
    return h >= 0xd800u && h <= 0xdbffu && l >= 0xdc00u && l <= 0xdfffu;
  }
};

}  // namespace ckpt
