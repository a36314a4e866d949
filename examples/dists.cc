// Monte Carlo sums over the standard distributions that keep hidden state
// between draws in libstdc++ (normal caches every second value; lognormal,
// gamma, chi_squared, student_t, fisher_f, poisson, binomial and
// negative_binomial hold a normal or gamma distribution inside). Each is
// registered, so a resumed run continues every sequence where it stopped.
//
//   dists [STEPS] [--ckpt-... options]
//
// Prints one "result" line, the same for an interrupted and resumed run as
// for an uninterrupted one on the same platform. (Across platforms the draws
// go through each C library's log and exp, which may differ in the last bit.)
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "result_hash.h"

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  auto& steps = s.var("steps", std::uint64_t(argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000));
  auto& step = s.var("step", std::uint64_t{0});
  auto& rng = s.var("rng", std::mt19937_64{2026});
  auto& normal = s.var("normal", std::normal_distribution<double>(0.0, 1.0));
  auto& lognormal = s.var("lognormal", std::lognormal_distribution<double>(0.0, 0.5));
  auto& gamma = s.var("gamma", std::gamma_distribution<double>(2.5, 1.0));
  auto& chi2 = s.var("chi_squared", std::chi_squared_distribution<double>(3.0));
  auto& student = s.var("student_t", std::student_t_distribution<double>(5.0));
  auto& fisher = s.var("fisher_f", std::fisher_f_distribution<double>(4.0, 6.0));
  auto& poisson = s.var("poisson", std::poisson_distribution<int>(30.0));
  auto& binomial = s.var("binomial", std::binomial_distribution<int>(200, 0.4));
  auto& negbin = s.var("negative_binomial", std::negative_binomial_distribution<int>(3, 0.5));
  auto& sums = s.var("sums", std::vector<double>(9, 0.0));
  auto& draws = s.var("draws", std::vector<double>());  // every draw, for the result's hash

  while (step < steps) {
    // At the top of a step the state is consistent too: a run resumed with
    // --ckpt-stop-at 1 writes its image again before drawing anything.
    s.safepoint();
    const double v[9] = {normal(rng),
                         lognormal(rng),
                         gamma(rng),
                         chi2(rng),
                         student(rng),
                         fisher(rng),
                         static_cast<double>(poisson(rng)),
                         static_cast<double>(binomial(rng)),
                         static_cast<double>(negbin(rng))};
    for (int i = 0; i < 9; ++i) {
      sums[i] += v[i];
      draws.push_back(v[i]);
    }
    ++step;
  }
  std::printf("result dists steps=%llu hash=%016llx normal=%.17g poisson=%.17g\n",
              static_cast<unsigned long long>(steps), static_cast<unsigned long long>(examples::Fnv1a(draws)),
              sums[0], sums[6]);
  return 0;
}
