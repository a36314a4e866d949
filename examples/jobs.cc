// A simulated job queue whose state uses the library's less common types: a
// priority_queue of jobs (equal priorities must pop in the same order after a
// resume), a multimap of the jobs each worker ran, a queue and a stack,
// std::chrono durations (simulated time) and a system_clock time point, a
// std::wstring log with a character above U+FFFF (a UTF-16 pair on
// Windows), a type of the program's own (Cents) made checkpointable with
// ckpt::Representation, and service times and billing noise drawn from
// ckpt's portable exponential and normal distributions (no libm in their
// draws). The result is the same on every platform, interrupted or not.
//
//   jobs [STEPS] [--ckpt-... options]
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <queue>
#include <random>
#include <stack>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "ckpt/portable_random.hpp"
#include "result_hash.h"

// Money in cents, with no public fields.
class Cents {
 public:
  Cents() = default;
  explicit Cents(std::int64_t v) : v_(v) {}
  std::int64_t value() const { return v_; }
  Cents& operator+=(Cents o) {
    v_ += o.v_;
    return *this;
  }

 private:
  std::int64_t v_ = 0;
};

template <>
struct ckpt::Representation<Cents> {
  static constexpr const char* kName = "Cents";
  using Type = std::int64_t;
  static Type Save(const Cents& c) { return c.value(); }
  static void Load(Type&& v, Cents& c) { c = Cents(v); }
};

using Job = std::pair<int, std::uint32_t>;  // (priority, id)
struct ByPriority {
  bool operator()(const Job& a, const Job& b) const { return a.first < b.first; }
};

int main(int argc, char** argv) {
  using namespace std::chrono;
  ckpt::Session s(argc, argv);
  auto& steps = s.var("steps", std::uint64_t(argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000));
  auto& step = s.var("step", std::uint64_t{0});
  auto& rng = s.var("rng", std::mt19937{7});
  auto& ready = s.var("ready", std::priority_queue<Job, std::vector<Job>, ByPriority>());
  auto& ran = s.var("ran", std::multimap<std::uint32_t, std::uint32_t>());  // worker -> job
  auto& arrivals = s.var("arrivals", std::queue<std::uint32_t>());
  auto& undo = s.var("undo", std::stack<std::uint32_t>());
  auto& clock = s.var("clock", milliseconds(0));
  auto& started = s.var("started", time_point_cast<seconds>(system_clock::now()));
  auto& log = s.var("log", std::wstring());
  auto& billed = s.var("billed", Cents(0));
  auto& next_id = s.var("next_id", std::uint32_t{1});
  auto& service = s.var("service", ckpt::portable_exponential_distribution(0.05));  // mean 20 ms
  auto& drawn = s.var("drawn", 0.0);
  auto& noise = s.var("noise", ckpt::portable_normal_distribution(0.0, 40.0));  // cents

  while (step < steps) {
    s.safepoint();
    for (std::uint32_t k = rng() % 4; k > 0; --k) arrivals.push(next_id++);
    while (!arrivals.empty()) {  // few distinct priorities: many ties
      ready.push({static_cast<int>(rng() % 4), arrivals.front()});
      arrivals.pop();
    }
    if (!ready.empty()) {
      Job j = ready.top();
      ready.pop();
      std::uint32_t worker = j.second % 5;
      ran.emplace(worker, j.second);
      undo.push(j.second);
      if (undo.size() > 8) undo = std::stack<std::uint32_t>();
      const double st = service(rng), nz = noise(rng);
      drawn += st + nz;  // the draws' bits reach the result
      clock += milliseconds(10 + j.first * 7 + static_cast<std::int64_t>(st));
      billed += Cents(j.first * 125 + 99 + static_cast<std::int64_t>(nz));
      log += (j.first == 3 ? L"\U0001F525" : L"\u00b7");  // fire, or a middle dot
    }
    ++step;
  }
  std::vector<double> h;  // everything but `started` (the wall clock at the start)
  for (const auto& [w, id] : ran) h.push_back(static_cast<double>(w) * 1e6 + id);
  for (std::priority_queue<Job, std::vector<Job>, ByPriority> q = ready; !q.empty(); q.pop())
    h.push_back(q.top().first * 1e6 + q.top().second);
  h.push_back(drawn);
  for (wchar_t c : log)  // per character: the fire is two wchar_t on Windows
    if (c != static_cast<wchar_t>(0xd83d)) h.push_back(c == L'\u00b7' ? 0.0 : 1.0);
  std::printf("result jobs steps=%" PRIu64 " hash=%016" PRIx64
              " clock_ms=%lld billed=%lld ran=%zu undo=%zu\n",
              steps.get(), examples::Fnv1a(h), static_cast<long long>(clock.count()),
              static_cast<long long>(billed.value()), ran.size(), undo.size());
  (void)started;
  return 0;
}
