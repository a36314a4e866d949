// Version 2 of the ledger of ledger_v1.cc, which resumes version 1's images
// (on any platform): its structs changed shape, and the library converts
// what the rules allow while ckpt::Upgrade converts the rest.
//
// What changed since version 1:
//   Entry    amount widened to 64 bits and now in cents (the hook multiplies
//            old amounts by 100); `day` added (default 0).
//   Account  `holder` renamed `owner`; `balance` (whole units, 32 bits)
//            replaced by `cents` (the hook converts it); `flags` removed, its
//            bit 0 becoming the count `overdrafts`; `rate` added with its
//            default 0.02.
//
//   ledger_v2 [STEPS] [--ckpt-... options]
//
// On a resume it prints one "upgraded" line per account as it found it, then
// works on in cents, paying interest every 50 steps, and prints a "result"
// line that is the same on every platform.
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
  std::int64_t amount = 0;  // cents
  std::string memo;
  std::uint32_t day = 0;
};
CKPT_FIELDS(Entry, amount, memo, day)
CKPT_VERSION(Entry, 2)

struct Account {
  std::string owner;
  std::int64_t cents = 0;
  std::int64_t overdrafts = 0;
  double rate = 0.02;
  std::vector<Entry> journal;
};
CKPT_FIELDS(Account, owner, cents, overdrafts, rate, journal)
CKPT_VERSION(Account, 2)

template <>
struct ckpt::Upgrade<Entry> {
  static void Apply(const ckpt::OldFields& old, Entry& now) {
    if (old.version() < 2) now.amount *= 100;  // whole units to cents
  }
};

template <>
struct ckpt::Upgrade<Account> {
  static constexpr ckpt::Renamed kRenamed[] = {{"holder", "owner"}};
  static bool Apply(const ckpt::OldFields& old, Account& now) {
    if (old.version() >= 2) return true;
    std::int64_t balance = 0;
    std::uint8_t flags = 0;
    if (!old.get("balance", balance) || !old.get("flags", flags)) return false;
    now.cents = balance * 100;
    now.overdrafts = flags & 1;
    return true;
  }
};

int main(int argc, char** argv) {
  ckpt::Options defaults;
  defaults.name = "ledger";  // both versions read and write ledger.NNNNNN.ckpt
  ckpt::Session s(argc, argv, defaults);
  auto& steps = s.var("steps", std::uint64_t(argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 300));
  auto& step = s.var("step", std::uint64_t{0});
  auto& rng = s.var("rng", std::mt19937{11});
  auto& accounts =
      s.var("accounts", std::map<std::string, Account>{{"ada", {"Ada Lovelace", 10000, 0, 0.02, {}}},
                                                       {"bob", {"Bob Barker", 2000, 0, 0.02, {}}},
                                                       {"cy", {"Cy Young", 0, 0, 0.02, {}}}});
  while (step < steps) {
    if (s.safepoint() == ckpt::Event::kResumed) {
      for (const auto& [id, a] : accounts) {
        std::int64_t sum = 0;
        for (const Entry& e : a.journal) sum += e.amount;
        std::printf("upgraded %s owner=%s cents=%" PRId64 " overdrafts=%" PRId64
                    " rate=%.2f entries=%zu sum=%" PRId64 "\n",
                    id.c_str(), a.owner.c_str(), a.cents, a.overdrafts, a.rate, a.journal.size(), sum);
      }
    }
    auto it = accounts.begin();
    std::advance(it, static_cast<long>(rng() % accounts.size()));
    Account& a = it->second;
    const std::int64_t amount = (static_cast<std::int64_t>(rng() % 201) - 100) * 100 + rng() % 100;
    const bool was_overdrawn = a.cents < 0;
    a.cents += amount;
    if (a.cents < 0 && !was_overdrawn) ++a.overdrafts;
    a.journal.push_back({amount, "step " + std::to_string(step), static_cast<std::uint32_t>(step / 50)});
    if (step % 50 == 49) {
      for (auto& [id, acc] : accounts) {
        if (acc.cents > 0)
          acc.cents += static_cast<std::int64_t>(static_cast<double>(acc.cents) * acc.rate / 12.0);
      }
    }
    ++step;
  }
  std::int64_t total = 0, overdrafts = 0;
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto& [id, a] : accounts) {
    total += a.cents;
    overdrafts += a.overdrafts;
    for (const Entry& e : a.journal) {
      h = (h ^ static_cast<std::uint64_t>(e.amount)) * 1099511628211ULL;
      h = (h ^ e.day) * 1099511628211ULL;
    }
  }
  std::printf("result ledger_v2 steps=%" PRIu64 " total_cents=%" PRId64 " overdrafts=%" PRId64
              " journal=%016" PRIx64 "\n",
              static_cast<std::uint64_t>(step), total, overdrafts, h);
  return 0;
}
