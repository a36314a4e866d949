// ckpt::Var<T>: a registered variable as Session::var() returns it — the
// session's own object, which checkpoints save and a resume fills. It can be
// neither copied nor moved, so `auto x = s.var(...)` (a copy that the
// checkpoints would never see) does not compile; hold it as `auto& x`.
// For class types it is a T (derived from it: members, iterators, `T&`
// parameters work unchanged); for numbers and enums it wraps the value and
// converts to `T&`. Used by the session's thread, like the Session.
#pragma once

#include <type_traits>
#include <utility>

#include "ckpt/serialize.hpp"

namespace ckpt {

namespace detail {
template <typename T>
class OwnedVar;
// Class types a Var can derive from; the others are wrapped.
template <typename T>
concept VarDerivable = std::is_class_v<T> && !std::is_final_v<T>;
// The operators a wrapped value offers: those of T.
template <typename T>
concept Steppable = requires(T& t) {
  ++t;
  --t;
  t++;
  t--;
};
#define CKPT_VAR_CONCEPT(name, op)             \
  template <typename T, typename U>            \
  concept name = requires(T & t, const U& u) { \
    t op u;                                    \
  };
CKPT_VAR_CONCEPT(AddAssignable, +=)
CKPT_VAR_CONCEPT(SubAssignable, -=)
CKPT_VAR_CONCEPT(MulAssignable, *=)
CKPT_VAR_CONCEPT(DivAssignable, /=)
CKPT_VAR_CONCEPT(ModAssignable, %=)
CKPT_VAR_CONCEPT(AndAssignable, &=)
CKPT_VAR_CONCEPT(OrAssignable, |=)
CKPT_VAR_CONCEPT(XorAssignable, ^=)
CKPT_VAR_CONCEPT(ShlAssignable, <<=)
CKPT_VAR_CONCEPT(ShrAssignable, >>=)
#undef CKPT_VAR_CONCEPT
}  // namespace detail

// Numbers, enums and final classes: a wrapper that converts to T& and has the
// assignment, compound assignment and increment operators of T. Where a
// conversion is not applied (printf's `...`, template argument deduction,
// taking the address), write x.get().
template <typename T>
class Var {
 public:
  Var(const Var&) = delete;           // not a value: hold it as `auto& x = s.var(...)`; printf("%d", x.get())
  Var& operator=(const Var& other) {  // assigns the value; the variable stays
    value_ = other.value_;
    return *this;
  }
  Var& operator=(const T& v) {
    value_ = v;
    return *this;
  }

  operator T&() noexcept { return value_; }
  operator const T&() const noexcept { return value_; }
  T& get() noexcept { return value_; }
  const T& get() const noexcept { return value_; }

#define CKPT_VAR_COMPOUND(op, concept_name)                          \
  template <typename U>                                              \
  requires detail::concept_name<T, U> Var& operator op(const U& u) { \
    value_ op u;                                                     \
    return *this;                                                    \
  }
  CKPT_VAR_COMPOUND(+=, AddAssignable)
  CKPT_VAR_COMPOUND(-=, SubAssignable)
  CKPT_VAR_COMPOUND(*=, MulAssignable)
  CKPT_VAR_COMPOUND(/=, DivAssignable)
  CKPT_VAR_COMPOUND(%=, ModAssignable)
  CKPT_VAR_COMPOUND(&=, AndAssignable)
  CKPT_VAR_COMPOUND(|=, OrAssignable)
  CKPT_VAR_COMPOUND(^=, XorAssignable)
  CKPT_VAR_COMPOUND(<<=, ShlAssignable)
  CKPT_VAR_COMPOUND(>>=, ShrAssignable)
#undef CKPT_VAR_COMPOUND

  Var& operator++() requires detail::Steppable<T> {
    ++value_;
    return *this;
  }
  T operator++(int) requires detail::Steppable<T> {
    return value_++;
  }
  Var& operator--() requires detail::Steppable<T> {
    --value_;
    return *this;
  }
  T operator--(int) requires detail::Steppable<T> {
    return value_--;
  }

 private:
  template <typename U>
  explicit Var(std::in_place_t, U&& v) : value_(std::forward<U>(v)) {}
  friend class detail::OwnedVar<T>;
  T value_;
};

// Class types: the variable is a T, with T's members and assignments.
template <typename T>
requires detail::VarDerivable<T>
class Var<T> : public T {
 public:
  Var(const Var&) = delete;  // not a value: hold it as `auto& x = s.var(...)` (or copy the T: T y = x)
  Var& operator=(const Var& other) {  // assigns the value; the variable stays
    static_cast<T&>(*this) = static_cast<const T&>(other);
    return *this;
  }
  using T::operator=;

 private:
  template <typename U>
  explicit Var(std::in_place_t, U&& v) : T(std::forward<U>(v)) {}
  friend class detail::OwnedVar<T>;
};

// A Var is saved as its T (for a program that binds one under another name).
template <typename T>
struct Traits<Var<T>> : Traits<T> {};

}  // namespace ckpt
