// Version 1 of a small bank ledger, the "before" half of an example of state
// that evolves (docs/api.md, "State that evolves"): ledger_v2 resumes this
// program's images although its structs changed shape. Balances here are
// whole units in 32 bits; bit 0 of `flags` says an account went overdrawn.
//
//   ledger_v1 [STEPS] [--ckpt-... options]
//
// It prints one "state" line per account, then a "result" line.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"

struct Entry {
  std::int32_t amount = 0;
  std::string memo;
};
CKPT_FIELDS(Entry, amount, memo)

struct Account {
  std::string holder;
  std::int32_t balance = 0;
  std::uint8_t flags = 0;  // bit 0: went overdrawn
  std::vector<Entry> journal;
};
CKPT_FIELDS(Account, holder, balance, flags, journal)

int main(int argc, char** argv) {
  ckpt::Options defaults;
  defaults.name = "ledger";  // both versions read and write ledger.NNNNNN.ckpt
  ckpt::Session s(argc, argv, defaults);
  auto& steps = s.var("steps", std::uint64_t(argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 300));
  auto& step = s.var("step", std::uint64_t{0});
  auto& rng = s.var("rng", std::mt19937{11});
  auto& accounts = s.var("accounts", std::map<std::string, Account>{{"ada", {"Ada Lovelace", 100, 0, {}}},
                                                                    {"bob", {"Bob Barker", 20, 0, {}}},
                                                                    {"cy", {"Cy Young", 0, 0, {}}}});
  while (step < steps) {
    s.safepoint();
    auto it = accounts.begin();
    std::advance(it, static_cast<long>(rng() % accounts.size()));
    Account& a = it->second;
    const auto amount = static_cast<std::int32_t>(rng() % 201) - 100;
    a.balance += amount;
    if (a.balance < 0) a.flags |= 1;
    a.journal.push_back({amount, "step " + std::to_string(step)});
    ++step;
  }
  std::int64_t total = 0;
  for (const auto& [id, a] : accounts) {
    std::int64_t sum = 0;
    for (const Entry& e : a.journal) sum += e.amount;
    std::printf("state %s holder=%s balance=%d flags=%u entries=%zu sum=%" PRId64 "\n", id.c_str(),
                a.holder.c_str(), a.balance, a.flags, a.journal.size(), sum);
    total += a.balance;
  }
  std::printf("result ledger_v1 steps=%" PRIu64 " total=%" PRId64 "\n", static_cast<std::uint64_t>(step),
              total);
  return 0;
}
