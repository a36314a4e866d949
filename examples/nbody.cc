// A small gravitational n-body simulation with random initial conditions and
// random "kicks" from std::mt19937_64, checkpointable with CKPT. Shows user
// structs (CKPT_FIELDS), a vector of structs, a map, and nested stages.
//
//   nbody [BODIES] [STEPS] [--ckpt-... options]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "result_hash.h"

struct Body {
  double x, y, z;
  double vx, vy, vz;
  double mass;
};
CKPT_FIELDS(Body, x, y, z, vx, vy, vz, mass)

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  auto& nbodies = s.var("nbodies", std::uint32_t(argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64));
  auto& steps = s.var("steps", std::uint64_t(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 300));
  auto& step = s.var("step", std::uint64_t{0});
  auto& bodies = s.var("bodies", std::vector<Body>());
  auto& rng = s.var("rng", std::mt19937_64{7});
  auto& stats = s.var("stats", std::map<std::string, double>());
  auto& kicks = s.var("kicks", std::int64_t{0});

  s.stage("setup", [&] {
    s.stage("place", [&] {
      std::uniform_real_distribution<double> pos(-1.0, 1.0), m(0.5, 1.5);
      bodies.resize(nbodies);
      for (auto& b : bodies) b = Body{pos(rng), pos(rng), pos(rng), 0, 0, 0, m(rng)};
    });
    s.stage("momentum", [&] {  // zero total momentum
      double px = 0, py = 0, pz = 0, mt = 0;
      for (const auto& b : bodies) {
        px += b.vx * b.mass;
        py += b.vy * b.mass;
        pz += b.vz * b.mass;
        mt += b.mass;
      }
      for (auto& b : bodies) {
        b.vx -= px / mt;
        b.vy -= py / mt;
        b.vz -= pz / mt;
      }
    });
  });

  const double dt = 0.001, soft = 0.01;
  std::uniform_real_distribution<double> kick(-0.01, 0.01);
  std::vector<double> ax(nbodies), ay(nbodies), az(nbodies);
  while (step < steps) {
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      ax[i] = ay[i] = az[i] = 0;
      for (std::size_t j = 0; j < bodies.size(); ++j) {
        if (i == j) continue;
        double dx = bodies[j].x - bodies[i].x, dy = bodies[j].y - bodies[i].y, dz = bodies[j].z - bodies[i].z;
        double r2 = dx * dx + dy * dy + dz * dz + soft;
        double inv = 1.0 / (r2 * std::sqrt(r2));
        ax[i] += dx * inv * bodies[j].mass;
        ay[i] += dy * inv * bodies[j].mass;
        az[i] += dz * inv * bodies[j].mass;
      }
    }
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      Body& b = bodies[i];
      b.vx += ax[i] * dt;
      b.vy += ay[i] * dt;
      b.vz += az[i] * dt;
      b.x += b.vx * dt;
      b.y += b.vy * dt;
      b.z += b.vz * dt;
    }
    if (step % 10 == 0) {
      std::size_t k = static_cast<std::size_t>(rng() % bodies.size());
      bodies[k].vx += kick(rng);
      ++kicks;
    }
    ++step;
    if (step % 25 == 0) {
      double e = 0;
      for (const auto& b : bodies) e += 0.5 * b.mass * (b.vx * b.vx + b.vy * b.vy + b.vz * b.vz);
      stats["kinetic@" + std::to_string(step)] = e;
    }
    s.safepoint();
  }
  std::vector<double> flat;
  for (const auto& b : bodies) flat.insert(flat.end(), {b.x, b.y, b.z, b.vx, b.vy, b.vz});
  double last = stats.empty() ? 0 : stats.rbegin()->second;
  std::printf("result nbody bodies=%u steps=%llu hash=%016llx kicks=%lld stats=%zu kinetic=%.17g\n",
              nbodies.get(), static_cast<unsigned long long>(steps),
              static_cast<unsigned long long>(examples::Fnv1a(flat)), static_cast<long long>(kicks),
              stats.size(), last);
  return 0;
}
