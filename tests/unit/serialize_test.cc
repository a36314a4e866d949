// Value encoding: descriptors, round trips of every supported type, width
// conversion with range checks, and malformed data.
#include "ckpt/serialize.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "serialize_util.h"
#include "state/compat.h"

namespace demo {
struct Point {
  double x = 0, y = 0;
  std::int32_t tag = 0;
  bool operator==(const Point&) const = default;
};
CKPT_FIELDS(Point, x, y, tag)

struct Outer {
  std::string name;
  std::vector<Point> points;
  std::array<std::uint8_t, 3> rgb{};
  double c_array[2] = {0, 0};
  bool operator==(const Outer& o) const {
    return name == o.name && points == o.points && rgb == o.rgb && c_array[0] == o.c_array[0] &&
           c_array[1] == o.c_array[1];
  }
};
CKPT_FIELDS(Outer, name, points, rgb, c_array)

class Private {
 public:
  Private() = default;
  explicit Private(int v) : secret_(v) {}
  int secret() const { return secret_; }
  CKPT_FRIEND_FIELDS(Private, secret_)

 private:
  int secret_ = 0;
};

enum class Color : std::uint8_t { kRed = 1, kBlue = 7 };
enum Plain { kA = -3, kB = 5 };
}  // namespace demo

namespace ckpt {
namespace {

TEST(Describe, Names) {
  EXPECT_EQ(Traits<double>::Describe().ToString(), "f64");
  EXPECT_EQ(Traits<float>::Describe().ToString(), "f32");
  EXPECT_EQ(Traits<std::int16_t>::Describe().ToString(), "i16");
  EXPECT_EQ(Traits<long>::Describe().ToString(), "i64");  // long is stored as 64 bits everywhere
  EXPECT_EQ(Traits<unsigned long>::Describe().ToString(), "u64");
  EXPECT_EQ(Traits<std::vector<double>>::Describe().ToString(), "vector<f64>");
  EXPECT_EQ((Traits<std::map<std::string, std::int32_t>>::Describe().ToString()), "map<string,i32>");
  EXPECT_EQ(Traits<demo::Point>::Describe().ToString(), "Point{x:f64,y:f64,tag:i32}");
  EXPECT_EQ(Traits<std::mt19937_64>::Describe().ToString(), "mt19937_64");
  EXPECT_EQ((Traits<std::array<float, 4>>::Describe().ToString()), "array<f32,4>");
  EXPECT_EQ(Traits<demo::Color>::Describe().ToString(), "enum<u8>");
  EXPECT_EQ((Traits<std::variant<std::monostate, int, std::string>>::Describe().ToString()),
            "variant<monostate,i32,string>");
  EXPECT_EQ(Traits<std::ranlux48>::Describe().ToString(),
            "discard_block_engine<subtract_with_carry_engine<u64,48,5,12>,389,11>");
}

TEST(RoundTrip, Scalars) {
  EXPECT_EQ(RoundTrip<std::int8_t>(-5), -5);
  EXPECT_EQ(RoundTrip<std::uint64_t>(~0ull), ~0ull);
  EXPECT_EQ(RoundTrip<long>(-1234567890123L), -1234567890123L);
  EXPECT_EQ(RoundTrip<bool>(true), true);
  EXPECT_EQ(RoundTrip<char>('z'), 'z');
  EXPECT_EQ(RoundTrip<wchar_t>(L'\x263a'), L'\x263a');
  EXPECT_EQ(RoundTrip<char32_t>(U'\U0001F600'), U'\U0001F600');
  EXPECT_EQ(RoundTrip<double>(-0.0), 0.0);
  EXPECT_TRUE(std::signbit(RoundTrip<double>(-0.0)));
  EXPECT_TRUE(std::isnan(RoundTrip<double>(std::nan(""))));
  EXPECT_EQ(RoundTrip<float>(1.5f), 1.5f);
  EXPECT_EQ(RoundTrip(demo::Color::kBlue), demo::Color::kBlue);
  EXPECT_EQ(RoundTrip(demo::kA), demo::kA);
}

TEST(RoundTrip, Containers) {
  std::vector<double> v = {1.0, -2.5, 1e300};
  EXPECT_EQ(RoundTrip(v), v);
  std::vector<bool> vb = {true, false, true, true};
  EXPECT_EQ(RoundTrip(vb), vb);
  std::deque<std::string> d = {"a", "", "ccc"};
  EXPECT_EQ(RoundTrip(d), d);
  std::list<std::int16_t> l = {1, -2, 3};
  EXPECT_EQ(RoundTrip(l), l);
  std::map<std::string, std::vector<int>> m = {{"x", {1, 2}}, {"y", {}}};
  EXPECT_EQ(RoundTrip(m), m);
  std::unordered_map<int, std::string> um = {{1, "one"}, {2, "two"}};
  EXPECT_EQ(RoundTrip(um), um);
  std::set<std::uint32_t> s = {3, 1, 2};
  EXPECT_EQ(RoundTrip(s), s);
  std::unordered_set<std::string> us = {"p", "q"};
  EXPECT_EQ(RoundTrip(us), us);
  std::array<std::int64_t, 3> a = {-1, 0, 1};
  EXPECT_EQ(RoundTrip(a), a);
  std::optional<std::string> o = "hi", none;
  EXPECT_EQ(RoundTrip(o), o);
  EXPECT_EQ(RoundTrip(none), none);
  std::pair<int, std::string> p = {4, "four"};
  EXPECT_EQ(RoundTrip(p), p);
  std::tuple<int, double, std::string> t = {1, 2.0, "3"};
  EXPECT_EQ(RoundTrip(t), t);
  std::variant<std::monostate, int, std::string> var = std::string("s");
  EXPECT_EQ(RoundTrip(var), var);
  std::vector<std::vector<std::optional<float>>> nested = {{1.0f, std::nullopt}, {}};
  EXPECT_EQ(RoundTrip(nested), nested);
}

TEST(RoundTrip, ComplexBitsetUniquePtrAtomic) {
  EXPECT_EQ(Traits<std::complex<double>>::Describe().ToString(), "complex<f64>");
  EXPECT_EQ(Traits<std::bitset<12>>::Describe().ToString(), "bitset<12>");
  EXPECT_EQ(Traits<std::unique_ptr<std::string>>::Describe().ToString(), "unique_ptr<string>");
  EXPECT_EQ(Traits<std::atomic<std::int32_t>>::Describe().ToString(), "i32");
  std::vector<std::complex<double>> zs = {{1.5, -2.0}, {0.0, 1e-300}};
  EXPECT_EQ(RoundTrip(zs), zs);
  std::bitset<70> bits;
  bits.set(0).set(33).set(69);
  EXPECT_EQ(RoundTrip(bits), bits);
  auto p = std::make_unique<std::vector<int>>(std::vector<int>{1, 2, 3});
  StringWriter w;
  Traits<std::unique_ptr<std::vector<int>>>::Save(w, p);
  std::unique_ptr<std::vector<int>> none;
  Traits<std::unique_ptr<std::vector<int>>>::Save(w, none);
  std::string bytes = w.str();
  StringReader r(bytes);
  std::unique_ptr<std::vector<int>> a, b = std::make_unique<std::vector<int>>();
  auto d = Traits<std::unique_ptr<std::vector<int>>>::Describe();
  Traits<std::unique_ptr<std::vector<int>>>::Load(r, a, d);
  Traits<std::unique_ptr<std::vector<int>>>::Load(r, b, d);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (std::vector<int>{1, 2, 3}));
  EXPECT_FALSE(b);
  std::atomic<std::int64_t> at{-42};
  StringWriter w2;
  Traits<std::atomic<std::int64_t>>::Save(w2, at);
  std::string b2 = w2.str();
  StringReader r2(b2);
  std::atomic<std::int64_t> back{0};
  Traits<std::atomic<std::int64_t>>::Load(r2, back, Traits<std::int64_t>::Describe());
  EXPECT_EQ(back.load(), -42);
  // complex<f64> is not array<f64,2>, and a bitset is not an array of bools.
  TypeDesc c, arr;
  ASSERT_TRUE(ParseTypeDesc("complex<f64>", &c));
  ASSERT_TRUE(ParseTypeDesc("array<f64,2>", &arr));
  EXPECT_FALSE(state::Compatible(c, arr));
  EXPECT_TRUE(state::Compatible(c, c));
}

TEST(RoundTrip, Structs) {
  demo::Outer o;
  o.name = "outer";
  o.points = {{1, 2, 3}, {4, 5, -6}};
  o.rgb = {1, 2, 3};
  o.c_array[0] = 0.5;
  o.c_array[1] = -0.5;
  EXPECT_EQ(RoundTrip(o), o);
  EXPECT_EQ(RoundTrip(demo::Private(42)).secret(), 42);
}

TEST(RoundTrip, RandomEnginesContinueIdentically) {
  std::mt19937_64 a(99);
  a.discard(1000);
  auto b = RoundTrip(a);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a(), b());
  std::ranlux24 r(5);
  r.discard(77);
  auto r2 = RoundTrip(r);
  EXPECT_EQ(r(), r2());
  std::normal_distribution<double> nd(0, 1);
  std::mt19937 g(1);
  nd(g);  // leaves a cached value behind
  auto nd2 = RoundTrip(nd);
  std::mt19937 g2 = g;
  EXPECT_EQ(nd(g), nd2(g2));
}

TEST(Encoding, IsLittleEndianAndFixed) {
  EXPECT_EQ(Encode<std::uint32_t>(0x01020304u), std::string("\x04\x03\x02\x01", 4));
  EXPECT_EQ(Encode<long>(1).size(), 8u);
  EXPECT_EQ(Encode<double>(1.0), std::string("\0\0\0\0\0\0\xf0\x3f", 8));
}

TEST(Convert, IntegerWidthsWithRangeChecks) {
  // An i64 written on one platform, read into a 32-bit integer on another.
  std::string small = Encode<std::int64_t>(-7);
  StringReader r(small);
  std::int32_t v = 0;
  Traits<std::int32_t>::Load(r, v, Traits<std::int64_t>::Describe());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(v, -7);

  std::string big = Encode<std::int64_t>(5000000000LL);
  StringReader r2(big);
  Traits<std::int32_t>::Load(r2, v, Traits<std::int64_t>::Describe());
  EXPECT_FALSE(r2.ok());
  EXPECT_NE(r2.error().find("5000000000"), std::string::npos) << r2.error();

  std::string neg = Encode<std::int16_t>(-1);
  StringReader r3(neg);
  std::uint32_t u = 0;
  Traits<std::uint32_t>::Load(r3, u, Traits<std::int16_t>::Describe());
  EXPECT_FALSE(r3.ok());

  std::vector<std::int64_t> vec = {1, 2, 3};
  std::string vb = Encode(vec);
  StringReader r4(vb);
  std::vector<std::int32_t> narrow;
  Traits<std::vector<std::int32_t>>::Load(r4, narrow, Traits<std::vector<std::int64_t>>::Describe());
  EXPECT_TRUE(r4.ok());
  EXPECT_EQ(narrow, (std::vector<std::int32_t>{1, 2, 3}));
}

TEST(Compat, Rules) {
  auto d = [](const char* s) {
    TypeDesc t;
    EXPECT_TRUE(ParseTypeDesc(s, &t)) << s;
    return t;
  };
  EXPECT_TRUE(state::Compatible(d("vector<f64>"), d("vector<f64>")));
  EXPECT_FALSE(state::Compatible(d("vector<f64>"), d("vector<f32>")));
  EXPECT_TRUE(state::Compatible(d("vector<i64>"), d("deque<i32>")));
  EXPECT_FALSE(state::Compatible(d("vector<i64>"), d("vector<u64>")));
  EXPECT_TRUE(state::Compatible(d("map<string,i32>"), d("unordered_map<string,i64>")));
  EXPECT_FALSE(state::Compatible(d("array<f64,3>"), d("array<f64,4>")));
  // A struct may lose `y` and gain `z` (docs/api.md, "State that evolves"),
  // not change a field's type, nor become another struct.
  EXPECT_TRUE(state::Compatible(d("P{x:f64,y:f64}"), d("P{x:f64,z:f64}")));
  EXPECT_FALSE(state::Compatible(d("P{x:f64,y:f64}"), d("P{x:string,y:f64}")));
  EXPECT_FALSE(state::Compatible(d("P{x:f64}"), d("Q{x:f64}")));
  EXPECT_TRUE(state::Compatible(d("vector<f32>"), d("vector<f64>")));
  EXPECT_FALSE(state::Compatible(d("mt19937"), d("mt19937_64")));
  EXPECT_TRUE(state::Compatible(d("enum<i32>"), d("enum<i8>")));
  EXPECT_FALSE(state::Compatible(d("enum<i32>"), d("enum<u32>")));
}

TEST(Parse, RejectsGarbage) {
  TypeDesc t;
  for (const char* s : {"", "vector<", "vector<f64", "map<i32>", "array<f64>", "f65", "i7", "P{x}", "P{x:f64",
                        "enum<x32>", "vector<f64>>", "tuple<i32,>"}) {
    EXPECT_FALSE(ParseTypeDesc(s, &t)) << s;
  }
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "vector<";
  deep += "f64";
  for (int i = 0; i < 100; ++i) deep += ">";
  EXPECT_FALSE(ParseTypeDesc(deep, &t));
}

TEST(Malformed, DataGivesErrorsNotCrashes) {
  {
    const std::string two("\x02", 1);
    StringReader r(two);
    bool b;
    Traits<bool>::Load(r, b, Traits<bool>::Describe());
    EXPECT_FALSE(r.ok());
  }
  {
    // A vector claiming 2^60 elements in 10 bytes.
    std::string s;
    std::uint64_t n = 1ull << 60;
    while (n >= 0x80) {
      s.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    s.push_back(static_cast<char>(n));
    s += "xxxxxxxx";
    StringReader r(s);
    std::vector<double> v;
    Traits<std::vector<double>>::Load(r, v, Traits<std::vector<double>>::Describe());
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(v.empty());
  }
  {
    const std::string five("\x05", 1);  // variant index 5 of 2
    StringReader r(five);
    std::variant<int, float> v;
    Traits<std::variant<int, float>>::Load(r, v, Traits<std::variant<int, float>>::Describe());
    EXPECT_FALSE(r.ok());
  }
  {
    std::string s = Encode(std::vector<double>{1, 2, 3});
    s.resize(s.size() - 3);
    StringReader r(s);
    std::vector<double> v;
    Traits<std::vector<double>>::Load(r, v, Traits<std::vector<double>>::Describe());
    EXPECT_FALSE(r.ok());
  }
  {
    std::string s = Encode(std::map<int, int>{{1, 2}});
    s[0] = 2;  // count 2, duplicate key by truncation/garbage
    s += s.substr(1);
    StringReader r(s);
    std::map<int, int> m;
    Traits<std::map<int, int>>::Load(r, m, Traits<std::map<int, int>>::Describe());
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.error().find("duplicate"), std::string::npos);
  }
}

}  // namespace
}  // namespace ckpt
