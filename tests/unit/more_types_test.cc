// The types of ckpt/more_types.hpp: a program's own type through
// ckpt::Representation, std::chrono, multi containers, container adapters and
// std::wstring: descriptors, round trips, compatibility and refused data.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <queue>
#include <set>
#include <stack>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ckpt/serialize.hpp"
#include "serialize_util.h"
#include "state/compat.h"

namespace shop {
// A type with no public fields, made checkpointable through its representation.
class Money {
 public:
  static Money FromCents(std::int64_t c) { return Money(c); }
  std::int64_t cents() const { return cents_; }
  Money() = default;
  bool operator==(const Money&) const = default;

 private:
  explicit Money(std::int64_t c) : cents_(c) {}
  std::int64_t cents_ = 0;
};

// Only valid for a non-empty name: Load refuses the rest.
struct Sku {
  std::string code;
  bool operator==(const Sku&) const = default;
};
}  // namespace shop

template <>
struct ckpt::Representation<shop::Money> {
  static constexpr const char* kName = "shop::Money";
  using Type = std::int64_t;
  static Type Save(const shop::Money& m) { return m.cents(); }
  static void Load(Type&& cents, shop::Money& m) { m = shop::Money::FromCents(cents); }
};

template <>
struct ckpt::Representation<shop::Sku> {
  static std::string Name() { return "Sku"; }
  using Type = std::string;
  static Type Save(const shop::Sku& s) { return s.code; }
  static bool Load(Type&& code, shop::Sku& s) {
    if (code.empty()) return false;
    s.code = std::move(code);
    return true;
  }
};

namespace ckpt {
namespace {

TypeDesc Parsed(const char* s) {
  TypeDesc t;
  EXPECT_TRUE(ParseTypeDesc(s, &t)) << s;
  return t;
}

TEST(Representation, OwnTypesRoundTripInsideContainers) {
  EXPECT_EQ(Traits<shop::Money>::Describe().ToString(), "shop::Money{value:i64}");
  EXPECT_EQ(Traits<shop::Sku>::Describe().ToString(), "Sku{value:string}");
  EXPECT_EQ(RoundTrip(shop::Money::FromCents(-1999)), shop::Money::FromCents(-1999));
  std::map<std::string, std::vector<shop::Money>> ledger = {{"a", {shop::Money::FromCents(5)}}, {"b", {}}};
  EXPECT_EQ(RoundTrip(ledger), ledger);
  EXPECT_EQ(RoundTrip(shop::Sku{"X-1"}), shop::Sku{"X-1"});
  // The representation's type is checked like any other: i64 stored, i32 read.
  EXPECT_TRUE(state::Compatible(Parsed("shop::Money{value:i32}"), Traits<shop::Money>::Describe()));
  EXPECT_FALSE(state::Compatible(Parsed("shop::Money{value:f64}"), Traits<shop::Money>::Describe()));
  EXPECT_FALSE(state::Compatible(Parsed("Money{value:i64}"), Traits<shop::Money>::Describe()));
}

TEST(Representation, LoadRefusingTheValueIsAnError) {
  std::string bytes = Encode(shop::Sku{""});
  StringReader r(bytes);
  shop::Sku s{"kept"};
  Traits<shop::Sku>::Load(r, s, Traits<shop::Sku>::Describe());
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("Sku value was refused"), std::string::npos) << r.error();
  EXPECT_EQ(s.code, "kept");
}

TEST(Chrono, DurationsAndSystemTimePoints) {
  using namespace std::chrono;
  EXPECT_EQ(Traits<milliseconds>::Describe().ToString(), "chrono::milliseconds{value:i64}");
  EXPECT_EQ(Traits<duration<double>>::Describe().ToString(), "chrono::seconds{value:f64}");
  EXPECT_EQ((Traits<duration<std::int32_t, std::ratio<1, 3>>>::Describe().ToString()),
            "chrono::duration_1_3{value:i32}");
  EXPECT_EQ(RoundTrip(nanoseconds(-123456789012345)), nanoseconds(-123456789012345));
  EXPECT_EQ(RoundTrip(duration<double>(2.5)), duration<double>(2.5));
  EXPECT_EQ(RoundTrip(hours(-7)), hours(-7));
  auto now = system_clock::now();
  EXPECT_EQ(RoundTrip(now), now);
  EXPECT_EQ(Traits<sys_seconds>::Describe().ToString(),
            "chrono::system_time{value:chrono::seconds{value:i64}}");
  std::map<std::string, system_clock::time_point> seen = {{"x", now}, {"y", system_clock::time_point{}}};
  EXPECT_EQ(RoundTrip(seen), seen);
  // A changed period is a mismatch, never a silent rescaling.
  EXPECT_FALSE(state::Compatible(Traits<milliseconds>::Describe(), Traits<microseconds>::Describe()));
  EXPECT_TRUE(state::Compatible(Traits<duration<std::int32_t, std::milli>>::Describe(),
                                Traits<milliseconds>::Describe()));
}

TEST(MultiContainers, KeepEveryElementAndTheOrderOfEqualKeys) {
  std::multimap<int, std::string> mm = {{2, "b1"}, {1, "a"}, {2, "b2"}, {2, "b3"}};
  EXPECT_EQ(Traits<decltype(mm)>::Describe().ToString(), "multimap<i32,string>");
  auto mm2 = RoundTrip(mm);
  EXPECT_EQ(mm2, mm);  // equal ranges compared in order
  std::multiset<double> ms = {1.5, 1.5, -2.0};
  EXPECT_EQ(RoundTrip(ms), ms);
  std::unordered_multimap<std::string, int> um;
  for (int i = 0; i < 50; ++i) um.emplace("k" + std::to_string(i % 7), i);
  auto um2 = RoundTrip(um);
  ASSERT_EQ(um2.size(), um.size());
  for (int k = 0; k < 7; ++k) {  // equal keys come back in the same order
    auto a = um.equal_range("k" + std::to_string(k));
    auto b = um2.equal_range("k" + std::to_string(k));
    std::vector<int> va, vb;
    for (auto it = a.first; it != a.second; ++it) va.push_back(it->second);
    for (auto it = b.first; it != b.second; ++it) vb.push_back(it->second);
    EXPECT_EQ(va, vb) << k;
  }
  std::unordered_multiset<int> us = {3, 3, 3, 4};
  EXPECT_EQ(RoundTrip(us), us);
  EXPECT_TRUE(state::Compatible(Parsed("multimap<i32,string>"), Parsed("unordered_multimap<i64,string>")));
  EXPECT_FALSE(state::Compatible(Parsed("multimap<i32,string>"), Parsed("map<i32,string>")));
  EXPECT_FALSE(state::Compatible(Parsed("multiset<i32>"), Parsed("set<i32>")));
}

TEST(Adapters, StackQueueAndTheSameHeap) {
  std::stack<int> st;
  for (int i : {5, -1, 7}) st.push(i);
  EXPECT_EQ(Traits<decltype(st)>::Describe().ToString(), "stack<i32>");
  EXPECT_EQ(RoundTrip(st), st);
  std::queue<std::string, std::list<std::string>> q;
  q.push("first");
  q.push("second");
  EXPECT_EQ(RoundTrip(q), q);
  // Equal priorities: the restored heap must pop them in the same order.
  using Job = std::pair<int, int>;  // (priority, id)
  auto by_priority = [](const Job& a, const Job& b) { return a.first < b.first; };
  std::priority_queue<Job, std::vector<Job>, decltype(by_priority)> pq(by_priority);
  for (int id = 0; id < 40; ++id) pq.push({id % 3, id});
  for (int i = 0; i < 5; ++i) pq.pop();
  auto pq2 = RoundTrip(pq);
  EXPECT_EQ(Traits<decltype(pq)>::Describe().ToString(), "priority_queue<pair<i32,i32>>");
  while (!pq.empty()) {
    ASSERT_FALSE(pq2.empty());
    EXPECT_EQ(pq.top(), pq2.top());
    pq.pop();
    pq2.pop();
  }
  EXPECT_TRUE(pq2.empty());
  EXPECT_FALSE(state::Compatible(Parsed("stack<i32>"), Parsed("vector<i32>")));
}

TEST(WString, CodePointsWhateverTheWcharWidth) {
  std::wstring s = L"h\u00e9llo \u263a";
  EXPECT_EQ(Traits<std::wstring>::Describe().ToString(), "wstring<wchar>");
  EXPECT_EQ(RoundTrip(s), s);
  // One code point above U+FFFF is one 32-bit value in the image (a UTF-16
  // pair on Windows, one wchar_t elsewhere).
  std::wstring emoji = L"\U0001F600!";
  std::string bytes = Encode(emoji);
  ASSERT_EQ(bytes.size(), 1u + 2 * 4);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), 2);
  EXPECT_EQ(bytes.substr(1, 4), std::string("\x00\xf6\x01\x00", 4));
  EXPECT_EQ(RoundTrip(emoji), emoji);
  EXPECT_EQ(RoundTrip(std::wstring()), std::wstring());
  // A code point no wchar_t can hold is an error, not a truncation.
  std::string bad = std::string("\x01", 1) + std::string("\x00\x00\x11\x00", 4);  // U+110000
  StringReader r(bad);
  std::wstring out;
  Traits<std::wstring>::Load(r, out, Traits<std::wstring>::Describe());
  if (sizeof(wchar_t) == 2) {
    EXPECT_FALSE(r.ok());
  } else {
    EXPECT_TRUE(r.ok());
  }
  EXPECT_FALSE(state::Compatible(Parsed("wstring<wchar>"), Parsed("vector<wchar>")));
}

TEST(Parse, StructsMayBeNamedLikeContainers) {
  TypeDesc t = Parsed("queue{head:i32}");
  EXPECT_EQ(t.kind, TypeDesc::Kind::kStruct);
  EXPECT_EQ(t.ToString(), "queue{head:i32}");
  EXPECT_EQ(Parsed("string{}").kind, TypeDesc::Kind::kStruct);
}

}  // namespace
}  // namespace ckpt
