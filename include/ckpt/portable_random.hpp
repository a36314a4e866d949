// Normal and exponential distributions whose draws are bit-identical on every
// platform: they use no C library function but sqrt (correctly rounded
// everywhere, like + - * /). std::normal_distribution calls the platform's
// log, which differs in the last bit between glibc and the Windows runtime
// (159 of 200,000 inputs here), so its draws differ between platforms even
// though its state moves exactly.
//
//   #include <ckpt/portable_random.hpp>
//   auto& rng = s.var("rng", std::mt19937_64{42});
//   auto& noise = s.var("noise", ckpt::portable_normal_distribution(0.0, 1.0));
//   double x = noise(rng);
//
// Both are checkpointable (parameters and the normal's cached second value),
// take any engine whose range is 32 or 64 bits (std::mt19937,
// std::mt19937_64, ...), and need the program compiled without contracted
// floating-point operations (-ffp-contract=off, which the ckpt::ckpt CMake
// target and the pkg-config flags carry) and, on 32-bit x86, with SSE2 math.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "ckpt/serialize.hpp"

namespace ckpt {

// The natural logarithm with + - * / only: the same bits on every platform,
// within one unit in the last place of the exact value.
inline double PortableLog(double x) {
  if (!(x > 0))
    return x == 0 ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  if (x == std::numeric_limits<double>::infinity()) return x;
  std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
  int e = static_cast<int>(bits >> 52) - 1023;
  if ((bits >> 52) == 0) {  // subnormal: scale by 2^54 (exact)
    bits = std::bit_cast<std::uint64_t>(x * 18014398509481984.0);
    e = static_cast<int>(bits >> 52) - 1023 - 54;
  }
  // x = m * 2^e with m in [sqrt(2)/2, sqrt(2)).
  double m = std::bit_cast<double>((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  // log(1+f) = 2 atanh(s) with s = f / (2 + f) = f - s (f - R), where
  // R = 2 s^2/3 + 2 s^4/5 + ... (|s| < 0.172: 12 terms reach 2^-60).
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s;
  double p = 2.0 / 25.0;
  for (int k = 11; k >= 1; --k) p = 2.0 / (2 * k + 1) + z * p;
  const double r = z * p;
  const double log1pf = f - s * (f - r);
  // e * ln 2 in two parts: the high part ends in 21 zero bits, so
  // e * kLn2Hi is exact for every exponent (|e| < 2^11).
  constexpr double kLn2Hi = 0x1.62e42feep-1;
  constexpr double kLn2Lo = 0x1.a39ef35793c76p-33;  // ln 2 - kLn2Hi
  const double de = static_cast<double>(e);
  return de * kLn2Hi + (log1pf + de * kLn2Lo);
}

namespace detail {

// A double uniform in [0, 1) from 53 bits of the engine: the same on every
// platform for the same engine state.
template <typename G>
double Uniform53(G& g) {
  using U = typename G::result_type;
  constexpr std::uint64_t kRange = static_cast<std::uint64_t>(G::max() - G::min());
  static_assert(kRange == 0xffffffffULL || kRange == ~std::uint64_t{0},
                "ckpt: the portable distributions need an engine whose values span 32 or 64 bits "
                "(std::mt19937, std::mt19937_64, ...)");
  std::uint64_t b;
  if constexpr (kRange == 0xffffffffULL) {
    const std::uint64_t hi = static_cast<std::uint64_t>(static_cast<U>(g() - G::min()));
    const std::uint64_t lo = static_cast<std::uint64_t>(static_cast<U>(g() - G::min()));
    b = ((hi << 32) | lo) >> 11;
  } else {
    b = static_cast<std::uint64_t>(g() - G::min()) >> 11;
  }
  return static_cast<double>(b) * 0x1.0p-53;
}

}  // namespace detail

// Normal draws (Marsaglia's polar method); each pair's second value is kept
// for the next call, and checkpointed with the parameters.
class portable_normal_distribution {
 public:
  portable_normal_distribution() = default;
  explicit portable_normal_distribution(double mean, double stddev = 1.0) : mean_(mean), stddev_(stddev) {}
  double mean() const { return mean_; }
  double stddev() const { return stddev_; }
  void reset() { has_saved_ = false; }
  template <typename G>
  double operator()(G& g) {
    if (has_saved_) {
      has_saved_ = false;
      return saved_ * stddev_ + mean_;
    }
    double u, v, q;
    do {
      u = 2.0 * detail::Uniform53(g) - 1.0;
      v = 2.0 * detail::Uniform53(g) - 1.0;
      q = u * u + v * v;
    } while (q >= 1.0 || q == 0.0);
    const double k = std::sqrt(-2.0 * PortableLog(q) / q);
    saved_ = v * k;
    has_saved_ = true;
    return u * k * stddev_ + mean_;
  }
  bool operator==(const portable_normal_distribution&) const = default;
  CKPT_FRIEND_FIELDS(portable_normal_distribution, mean_, stddev_, has_saved_, saved_)

 private:
  double mean_ = 0.0;
  double stddev_ = 1.0;
  bool has_saved_ = false;
  double saved_ = 0.0;
};

// Exponential draws: -log(u) / lambda, u uniform in (0, 1].
class portable_exponential_distribution {
 public:
  portable_exponential_distribution() = default;
  explicit portable_exponential_distribution(double lambda) : lambda_(lambda) {}
  double lambda() const { return lambda_; }
  void reset() {}
  template <typename G>
  double operator()(G& g) {
    return -PortableLog(1.0 - detail::Uniform53(g)) / lambda_;
  }
  bool operator==(const portable_exponential_distribution&) const = default;
  CKPT_FRIEND_FIELDS(portable_exponential_distribution, lambda_)

 private:
  double lambda_ = 1.0;
};

}  // namespace ckpt
