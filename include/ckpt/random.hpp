// ckpt::Traits for the standard random engines and distributions (part of
// ckpt/serialize.hpp, which includes it). Engines are stored as their
// standard text representation; distributions likewise, with exact numbers
// (see below). Stateless; the Writers and Readers follow serialize.hpp's rules.
#pragma once

#include <locale>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>

#include "ckpt/serialize.hpp"

namespace ckpt {

// --- random engines ---------------------------------------------------------
namespace detail {

// Engines are stored as their standard text representation (decimal state
// words), which every platform reads back exactly.
template <typename E>
struct EngineTraits {
  static void Save(Writer& w, const E& e) {
    std::ostringstream os;
    os.imbue(std::locale::classic());
    os << e;
    std::string s = os.str();
    Traits<std::string>::Save(w, s);
  }
  static void Load(Reader& r, E& e, const TypeDesc& img) {
    std::string s;
    Traits<std::string>::Load(r, s, img);
    if (!r.ok()) return;
    std::istringstream is(s);
    is.imbue(std::locale::classic());
    is >> e;
    if (is.fail()) r.Fail("random engine state is malformed");
  }
};

template <typename U>
std::string UIntName() {
  return "u" + std::to_string(sizeof(U) * 8);
}

}  // namespace detail

template <typename U, std::size_t W, std::size_t N, std::size_t M, std::size_t R, U A, std::size_t Uu, U D,
          std::size_t S, U B, std::size_t T, U C, std::size_t L, U F>
struct Traits<std::mersenne_twister_engine<U, W, N, M, R, A, Uu, D, S, B, T, C, L, F>>
    : detail::EngineTraits<std::mersenne_twister_engine<U, W, N, M, R, A, Uu, D, S, B, T, C, L, F>> {
  using E = std::mersenne_twister_engine<U, W, N, M, R, A, Uu, D, S, B, T, C, L, F>;
  static TypeDesc Describe() {
    std::string n;
    if constexpr (std::is_same_v<E, std::mt19937>)
      n = "mt19937";
    else if constexpr (std::is_same_v<E, std::mt19937_64>)
      n = "mt19937_64";
    else
      n = "mersenne_twister_engine<" + detail::UIntName<U>() + "," + std::to_string(W) + "," +
          std::to_string(N) + "," + std::to_string(M) + "," + std::to_string(R) + "," + std::to_string(A) +
          "," + std::to_string(Uu) + "," + std::to_string(D) + "," + std::to_string(S) + "," +
          std::to_string(B) + "," + std::to_string(T) + "," + std::to_string(C) + "," + std::to_string(L) +
          "," + std::to_string(F) + ">";
    return detail::Leaf(TypeDesc::Kind::kOpaque, 0, n);
  }
};

template <typename U, U A, U C, U M>
struct Traits<std::linear_congruential_engine<U, A, C, M>>
    : detail::EngineTraits<std::linear_congruential_engine<U, A, C, M>> {
  using E = std::linear_congruential_engine<U, A, C, M>;
  static TypeDesc Describe() {
    std::string n;
    if constexpr (std::is_same_v<E, std::minstd_rand0>)
      n = "minstd_rand0";
    else if constexpr (std::is_same_v<E, std::minstd_rand>)
      n = "minstd_rand";
    else
      n = "linear_congruential_engine<" + detail::UIntName<U>() + "," + std::to_string(A) + "," +
          std::to_string(C) + "," + std::to_string(M) + ">";
    return detail::Leaf(TypeDesc::Kind::kOpaque, 0, n);
  }
};

template <typename U, std::size_t W, std::size_t S, std::size_t R>
struct Traits<std::subtract_with_carry_engine<U, W, S, R>>
    : detail::EngineTraits<std::subtract_with_carry_engine<U, W, S, R>> {
  static TypeDesc Describe() {
    return detail::Leaf(TypeDesc::Kind::kOpaque, 0,
                        "subtract_with_carry_engine<" + detail::UIntName<U>() + "," + std::to_string(W) +
                            "," + std::to_string(S) + "," + std::to_string(R) + ">");
  }
};

template <typename E, std::size_t P, std::size_t R>
struct Traits<std::discard_block_engine<E, P, R>> : detail::EngineTraits<std::discard_block_engine<E, P, R>> {
  static TypeDesc Describe() {
    return detail::Leaf(TypeDesc::Kind::kOpaque, 0,
                        "discard_block_engine<" + Traits<E>::Describe().name + "," + std::to_string(P) + "," +
                            std::to_string(R) + ">");
  }
};

template <typename E, std::size_t K>
struct Traits<std::shuffle_order_engine<E, K>> : detail::EngineTraits<std::shuffle_order_engine<E, K>> {
  static TypeDesc Describe() {
    return detail::Leaf(TypeDesc::Kind::kOpaque, 0,
                        "shuffle_order_engine<" + Traits<E>::Describe().name + "," + std::to_string(K) + ">");
  }
};

template <typename E, std::size_t W, typename U>
struct Traits<std::independent_bits_engine<E, W, U>>
    : detail::EngineTraits<std::independent_bits_engine<E, W, U>> {
  static TypeDesc Describe() {
    return detail::Leaf(TypeDesc::Kind::kOpaque, 0,
                        "independent_bits_engine<" + Traits<E>::Describe().name + "," + std::to_string(W) +
                            "," + detail::UIntName<U>() + ">");
  }
};

// --- random distributions -----------------------------------------------------
// libstdc++'s normal_distribution caches the second value of each pair it
// draws, and lognormal, gamma (so chi_squared, student_t, fisher_f,
// negative_binomial), poisson and binomial hold a normal or gamma
// distribution inside: their next draw depends on that hidden state, which
// only their standard text form (operator<< / >>) exposes. A distribution is
// stored as that text, its floating-point numbers written as the shortest
// decimal that reads back to the same bits (std::to_chars) and read with
// std::from_chars, whatever the platform's printf and strtod would do.
namespace detail {

// The classic locale with those exact number facets (src/state/number_text.cc).
const std::locale& ExactNumberLocale();

template <typename D>
struct DistributionTraits {
  static void Save(Writer& w, const D& d) {
    std::ostringstream os;
    os.imbue(ExactNumberLocale());
    os << d;
    Traits<std::string>::Save(w, os.str());
  }
  static void Load(Reader& r, D& d, const TypeDesc& img) {
    std::string s;
    Traits<std::string>::Load(r, s, img);
    if (!r.ok()) return;
    std::istringstream is(s);
    is.imbue(ExactNumberLocale());
    D loaded;
    is >> loaded;
    bool rest = false;  // anything but blanks after the value
    for (int c; (c = is.rdbuf()->sbumpc()) != std::char_traits<char>::eof();) rest = rest || c != ' ';
    if (is.fail() || rest) {
      r.Fail("random distribution state is malformed");
      return;
    }
    d = loaded;
  }
};

// "normal_distribution<f64>", "poisson_distribution<i32>": the name and the
// stored form of the result type (so `long` is i64 on every platform).
template <typename R>
TypeDesc DistributionDesc(const char* name) {
  return Leaf(TypeDesc::Kind::kOpaque, 0, std::string(name) + "<" + Traits<R>::Describe().ToString() + ">");
}

}  // namespace detail

#define CKPT_DISTRIBUTION_TRAITS(dist)                                        \
  template <typename R>                                                       \
  struct Traits<std::dist<R>> : detail::DistributionTraits<std::dist<R>> {    \
    static TypeDesc Describe() { return detail::DistributionDesc<R>(#dist); } \
  };
// Hold hidden state: must be registered for a resume to continue their sequence.
CKPT_DISTRIBUTION_TRAITS(normal_distribution)
CKPT_DISTRIBUTION_TRAITS(lognormal_distribution)
CKPT_DISTRIBUTION_TRAITS(gamma_distribution)
CKPT_DISTRIBUTION_TRAITS(chi_squared_distribution)
CKPT_DISTRIBUTION_TRAITS(student_t_distribution)
CKPT_DISTRIBUTION_TRAITS(fisher_f_distribution)
CKPT_DISTRIBUTION_TRAITS(poisson_distribution)
CKPT_DISTRIBUTION_TRAITS(binomial_distribution)
CKPT_DISTRIBUTION_TRAITS(negative_binomial_distribution)
// Stateless in libstdc++ (only their parameters): may be registered.
CKPT_DISTRIBUTION_TRAITS(uniform_int_distribution)
CKPT_DISTRIBUTION_TRAITS(uniform_real_distribution)
CKPT_DISTRIBUTION_TRAITS(geometric_distribution)
CKPT_DISTRIBUTION_TRAITS(exponential_distribution)
CKPT_DISTRIBUTION_TRAITS(weibull_distribution)
CKPT_DISTRIBUTION_TRAITS(extreme_value_distribution)
CKPT_DISTRIBUTION_TRAITS(cauchy_distribution)
#undef CKPT_DISTRIBUTION_TRAITS

template <>
struct Traits<std::bernoulli_distribution> : detail::DistributionTraits<std::bernoulli_distribution> {
  static TypeDesc Describe() { return detail::DistributionDesc<double>("bernoulli_distribution"); }
};

// Stateless, and their text form re-normalizes the weights on reading, which
// may change the last bit of a probability: build them again from the
// program's own weights after a resume instead.
template <typename R>
struct Traits<std::discrete_distribution<R>> {
  static_assert(sizeof(R) == 0,
                "ckpt: discrete_distribution cannot be registered (it holds no state between draws, and "
                "reading it back re-normalizes its weights): construct it again from your weights");
};
template <typename R>
struct Traits<std::piecewise_constant_distribution<R>> {
  static_assert(sizeof(R) == 0,
                "ckpt: piecewise_constant_distribution cannot be registered (it holds no state between "
                "draws, and reading it back re-normalizes its densities): construct it again");
};
template <typename R>
struct Traits<std::piecewise_linear_distribution<R>> {
  static_assert(sizeof(R) == 0,
                "ckpt: piecewise_linear_distribution cannot be registered (it holds no state between "
                "draws, and reading it back re-normalizes its densities): construct it again");
};

}  // namespace ckpt
