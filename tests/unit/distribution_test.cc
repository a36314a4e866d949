// Random distributions through a real checkpoint and resume: for each one,
// N draws, a checkpoint, a resume in a new Session, and the draws that follow
// must be bit for bit those of the uninterrupted sequence (libstdc++'s normal
// distribution caches every second value; lognormal, gamma, chi_squared,
// student_t, fisher_f, poisson, binomial and negative_binomial hold one
// inside). Also the exact number text those images hold.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "ckpt/portable_random.hpp"
#include "state/value_walk.h"
#include "temp_dir_test.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

class DistributionTest : public TempDirTest {
 protected:
  Options Opts(std::string resume = "") const { return TempDirTest::Opts(std::move(resume), "d"); }

  // Bits of a draw, so that floating-point values compare exactly.
  template <typename V>
  static std::uint64_t Bits(V v) {
    if constexpr (std::is_floating_point_v<V>) {
      std::uint64_t b = 0;
      std::memcpy(&b, &v, sizeof v);
      return b;
    } else {
      return static_cast<std::uint64_t>(v);
    }
  }

  // `before` draws, a checkpoint, `after` draws in a resumed session.
  template <typename D>
  void ExpectResumeContinues(const D& proto, int before, int after) {
    SCOPED_TRACE(std::string(Traits<D>::Describe().ToString()) + " after " + std::to_string(before) +
                 " draws");
    std::mt19937_64 g0(20261130);
    D d0 = proto;
    std::vector<std::uint64_t> want;
    for (int i = 0; i < before + after; ++i) want.push_back(Bits(d0(g0)));

    std::vector<std::uint64_t> got;
    std::string image;
    {
      Session s(Opts());
      auto& g = s.var("rng", std::mt19937_64(20261130));
      auto& d = s.var("dist", proto);
      for (int i = 0; i < before; ++i) got.push_back(Bits(d(g)));
      ASSERT_EQ(s.checkpoint(), Event::kCheckpointed) << s.last_error();
      image = s.last_image();
      for (int i = 0; i < 3; ++i) d(g);  // after the checkpoint: not in the image
    }
    Session s(Opts(image));
    auto& g = s.var("rng", std::mt19937_64(1));
    auto& d = s.var("dist", D());
    ASSERT_EQ(s.safepoint(), Event::kResumed);
    for (int i = 0; i < after; ++i) got.push_back(Bits(d(g)));
    EXPECT_EQ(got, want);
    fs::remove(image);
  }

  template <typename D>
  void ExpectAll(const D& proto) {
    for (int before : {0, 1, 2, 7, 100}) ExpectResumeContinues(proto, before, 200);
  }
};

TEST_F(DistributionTest, StatefulDistributionsResumeBitIdentically) {
  ExpectAll(std::normal_distribution<double>(3.0, 0.5));
  ExpectAll(std::normal_distribution<float>(-1.0f, 2.0f));
  ExpectAll(std::lognormal_distribution<double>(0.1, 0.7));
  ExpectAll(std::gamma_distribution<double>(2.5, 1.5));   // alpha >= 1
  ExpectAll(std::gamma_distribution<double>(0.25, 3.0));  // alpha < 1
  ExpectAll(std::gamma_distribution<float>(4.0f, 0.5f));
  ExpectAll(std::chi_squared_distribution<double>(3.5));
  ExpectAll(std::student_t_distribution<double>(4.0));
  ExpectAll(std::fisher_f_distribution<double>(3.0, 7.0));
  ExpectAll(std::poisson_distribution<int>(40.0));  // mean >= 12: the branch that uses a normal
  ExpectAll(std::poisson_distribution<long>(2.5));
  ExpectAll(std::binomial_distribution<int>(1000, 0.3));  // t*p >= 8: the branch that uses a normal
  ExpectAll(std::negative_binomial_distribution<int>(5, 0.4));
}

TEST_F(DistributionTest, StatelessDistributionsMayBeRegistered) {
  ExpectAll(std::uniform_int_distribution<std::int64_t>(-5, 1000000007));
  ExpectAll(std::uniform_real_distribution<double>(-2.0, 0.1));
  ExpectAll(std::bernoulli_distribution(0.3));
  ExpectAll(std::geometric_distribution<int>(0.2));
  ExpectAll(std::exponential_distribution<double>(1.7));
  ExpectAll(std::weibull_distribution<double>(1.5, 2.0));
  ExpectAll(std::extreme_value_distribution<double>(0.5, 1.25));
  ExpectAll(std::cauchy_distribution<double>(0.0, 0.1));
}

TEST_F(DistributionTest, PortableDistributionsResumeBitIdentically) {
  ExpectAll(portable_normal_distribution(3.0, 0.5));  // odd counts: resumed between the two of a pair
  ExpectAll(portable_exponential_distribution(1.7));
  EXPECT_EQ(Traits<portable_normal_distribution>::Describe().ToString(),
            "portable_normal_distribution{mean_:f64,stddev_:f64,has_saved_:bool,saved_:f64}");
}

// PortableLog against glibc's log (itself within an ulp of the exact value):
// at most one unit in the last place apart, over every binade.
TEST(PortableLog, WithinOneUlpOfTheCLibrary) {
  std::mt19937_64 g(7);
  int differ = 0;
  for (int i = 0; i < 2000000; ++i) {
    std::uint64_t bits = g() & 0x7fffffffffffffffULL;  // positive, any exponent
    double x;
    std::memcpy(&x, &bits, sizeof x);
    if (!std::isfinite(x) || x == 0) continue;
    double a = PortableLog(x), b = std::log(x);
    if (a != b) {
      ++differ;
      ASSERT_LE(std::fabs(a - b), std::fabs(std::nextafter(b, 0.0) - b)) << x;
    }
  }
  for (double x : {0.5, 0.75, 0.999999, 1.000001, 1.4142135623730951, 2.0, 10.0, 1e-300, 4.9e-324, 1e300}) {
    double a = PortableLog(x), b = std::log(x);
    EXPECT_LE(std::fabs(a - b), std::fabs(std::nextafter(b, 0.0) - b)) << x;
  }
  EXPECT_LT(differ, 20000);  // well under 1 % of inputs
  EXPECT_EQ(PortableLog(1.0), 0.0);
  EXPECT_EQ(PortableLog(0.0), -INFINITY);
  EXPECT_TRUE(std::isnan(PortableLog(-1.0)));
  EXPECT_TRUE(std::isnan(PortableLog(NAN)));
  EXPECT_EQ(PortableLog(INFINITY), INFINITY);
}

// Their moments, as a check that they draw what they say.
TEST(PortableDistributions, MeanAndVariance) {
  std::mt19937 g(1);  // a 32-bit engine: two values per uniform
  portable_normal_distribution n(2.0, 3.0);
  portable_exponential_distribution e(4.0);
  double sn = 0, sn2 = 0, se = 0;
  const int kN = 400000;
  for (int i = 0; i < kN; ++i) {
    double x = n(g);
    sn += x;
    sn2 += x * x;
    se += e(g);
  }
  double mean = sn / kN, var = sn2 / kN - mean * mean;
  EXPECT_NEAR(mean, 2.0, 0.03);
  EXPECT_NEAR(var, 9.0, 0.1);
  EXPECT_NEAR(se / kN, 0.25, 0.003);
}

template <typename D>
D Load(const std::string& text, std::string* error = nullptr) {
  StringWriter w;
  Traits<std::string>::Save(w, text);
  std::string bytes = w.str();
  StringReader r(bytes);
  D d;
  Traits<D>::Load(r, d, Traits<D>::Describe());
  if (error != nullptr) *error = r.error();
  return d;
}

template <typename D>
std::string Text(const D& d) {
  StringWriter w;
  Traits<D>::Save(w, d);
  std::string bytes = w.str();
  StringReader r(bytes);
  std::string s;
  Traits<std::string>::Load(r, s, Traits<std::string>::Describe());
  return s;
}

// Numbers are written as the shortest text that reads back to the same bits
// (not through the C library), extremes included; libstdc++'s own longer form
// (older images) still reads; malformed or non-finite state is refused.
TEST(DistributionText, NumbersAreExactShortAndChecked) {
  std::uniform_real_distribution<double> u(4.9406564584124654e-324, 1.7976931348623157e308);
  EXPECT_EQ(Text(u), "5e-324 1.7976931348623157e+308");
  auto u2 = Load<std::uniform_real_distribution<double>>(Text(u));
  EXPECT_EQ(u2.a(), u.a());
  EXPECT_EQ(u2.b(), u.b());
  std::normal_distribution<double> n(0.1, 0.30000000000000004);
  std::mt19937 g(1);
  n(g);
  auto n2 = Load<std::normal_distribution<double>>(Text(n));
  EXPECT_EQ(n2.mean(), 0.1);
  EXPECT_EQ(n2.stddev(), 0.30000000000000004);
  std::mt19937 g2 = g;
  EXPECT_EQ(n(g), n2(g2));  // the cached value came back exactly
  auto old = Load<std::normal_distribution<double>>(
      "0.00000000000000000e+00 1.00000000000000000e+00 1 -1.40287270912792095e+00");
  std::mt19937 g3(7);
  EXPECT_EQ(old(g3), -1.40287270912792095);
  std::string error;
  Load<std::normal_distribution<double>>("nan 1 0", &error);
  EXPECT_NE(error.find("malformed"), std::string::npos) << error;
  Load<std::normal_distribution<double>>("0 1 0 trailing", &error);
  EXPECT_NE(error.find("malformed"), std::string::npos) << error;
  Load<std::normal_distribution<double>>("0 1 1", &error);  // the cached value is missing
  EXPECT_NE(error.find("malformed"), std::string::npos) << error;
}

TEST(DistributionText, DescriptorsNameTheStoredResultType) {
  EXPECT_EQ(Traits<std::normal_distribution<double>>::Describe().ToString(), "normal_distribution<f64>");
  EXPECT_EQ(Traits<std::gamma_distribution<float>>::Describe().ToString(), "gamma_distribution<f32>");
  EXPECT_EQ(Traits<std::poisson_distribution<long>>::Describe().ToString(), "poisson_distribution<i64>");
  EXPECT_EQ(Traits<std::bernoulli_distribution>::Describe().ToString(), "bernoulli_distribution<f64>");
  TypeDesc parsed;
  EXPECT_TRUE(ParseTypeDesc("student_t_distribution<f64>", &parsed));
  // `ckpt inspect --values` shows a distribution's short state as text.
  std::string bytes;
  {
    StringWriter w;
    Traits<std::poisson_distribution<int>>::Save(w, std::poisson_distribution<int>(40.0));
    bytes = w.str();
  }
  StringReader r(bytes);
  std::string shown;
  state::WalkValue(r, Traits<std::poisson_distribution<int>>::Describe(), &shown, 1000);
  EXPECT_EQ(shown, "\"40 0 1 0\"");
}

}  // namespace
}  // namespace ckpt
