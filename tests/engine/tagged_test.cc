// The tagged record encoding of the process image sections (engine/tagged.h),
// on its own: every member type, unknown fields (skipped, or refused when
// critical), absent fields, any order, and malformed records.
#include "engine/tagged.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace ckpt::engine::tagged_test {

using tagged::Field;
using tagged::FieldReader;
using tagged::kCritical;
using tagged::Max;
using tagged::Wire;

enum class Color : std::uint8_t { kRed = 0, kGreen = 1, kBlue = 2 };

struct Inner {
  std::uint32_t a = 0;
  std::string s;
  bool operator==(const Inner&) const = default;
};

template <class IO>
void Fields(IO& io, Inner& x) {
  io(1, "a", x.a);
  io(2, "s", x.s);
}

struct Outer {
  std::int32_t i32 = -1;  // a default that is not zero
  std::uint64_t u64 = 0;
  std::int64_t i64 = 0;
  std::uint8_t u8 = 0;
  std::int16_t i16 = 0;
  bool flag = false;
  Color color = Color::kRed;
  std::string text;
  std::vector<std::uint32_t> nums;
  std::vector<std::int16_t> snums;
  std::array<std::uint64_t, 3> triple{};
  std::vector<std::string> strings;
  Inner inner;
  std::vector<Inner> inners;
  std::array<Inner, 2> pair{};
  bool critical_flag = false;
  bool operator==(const Outer&) const = default;
};

template <class IO>
void Fields(IO& io, Outer& x) {
  io(1, "i32", x.i32);
  io(2, "u64", x.u64);
  io(3, "i64", x.i64);
  io(4, "u8", x.u8);
  io(5, "i16", x.i16);
  io(6, "flag", x.flag);
  io(7, "color", x.color);
  io(8, "text", x.text);
  io(9, "nums", x.nums, Max{4});
  io(10, "snums", x.snums);
  io(11, "triple", x.triple);
  io(12, "strings", x.strings, Max{3});
  io(13, "inner", x.inner);
  io(14, "inners", x.inners, Max{3});
  io(15, "pair", x.pair);
  io(16, "critical_flag", x.critical_flag, kCritical);
}

std::string Encode(const Outer& x) {
  std::string o;
  tagged::AppendFields(&o, x);
  return o;
}

Status Decode(std::string_view in, Outer* x) {
  return tagged::DecodeFields(in, tagged::Where{"test"}, x);
}

Outer Full() {
  Outer x;
  x.i32 = std::numeric_limits<std::int32_t>::min();
  x.u64 = std::numeric_limits<std::uint64_t>::max();
  x.i64 = std::numeric_limits<std::int64_t>::min();
  x.u8 = 255;
  x.i16 = -32768;
  x.flag = true;
  x.color = Color::kBlue;
  x.text = std::string("a\0b", 3);
  x.nums = {0, 1, 0xffffffffu};
  x.snums = {-1, 0, 32767};
  x.triple = {0, 0x7ffd1864d268ull, ~0ull};
  x.strings = {"", "two"};
  x.inner = {7, "seven"};
  x.inners = {{}, {1, ""}, {0, "x"}};
  x.pair = {Inner{}, Inner{2, "b"}};
  x.critical_flag = true;
  return x;
}

// The fields of `in`, as read.
std::vector<Field> Split(std::string_view in) {
  std::vector<Field> out;
  FieldReader r(in);
  Field f;
  while (r.Next(&f)) out.push_back(f);
  EXPECT_TRUE(r.ok()) << r.error();
  return out;
}

std::string Join(const std::vector<Field>& fields) {
  std::string o;
  for (const Field& f : fields) {
    tagged::PutKey(&o, f.tag, f.wire, f.critical);
    if (f.wire == Wire::kVarint) PutVarint(&o, f.num);
    if (f.wire == Wire::kFixed64) PutU64(&o, f.num);
    if (f.wire == Wire::kBytes) PutString(&o, f.bytes);
  }
  return o;
}

Status DecodeBytes(const std::string& in) {
  Outer x;
  return Decode(in, &x);
}

TEST(EngineTagged, RoundTripsEveryMemberType) {
  for (const Outer& x : {Full(), Outer{}}) {
    Outer back;
    Status s = Decode(Encode(x), &back);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(back == x);
  }
  Outer zero;  // zero where the default is -1: written, read back as zero
  zero.i32 = 0;
  Outer back;
  ASSERT_TRUE(Decode(Encode(zero), &back).ok());
  EXPECT_EQ(back.i32, 0);
}

TEST(EngineTagged, LeavesOutZeroDefaultsAndUsesFixed64ForLargeNumbers) {
  Outer x;
  x.i32 = 0;
  std::vector<Field> f = Split(Encode(x));
  ASSERT_EQ(f.size(), 1u);  // only i32, whose default is not zero
  EXPECT_EQ(f[0].tag, 1u);
  x = Outer{};
  x.u64 = ~0ull;
  x.i64 = -2;
  f = Split(Encode(x));
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[1].wire, Wire::kFixed64);  // u64: a varint would take 10 bytes
  EXPECT_EQ(f[2].wire, Wire::kVarint);   // i64: zigzag 3
  EXPECT_EQ(f[2].num, 3u);
  x = Outer{};
  x.critical_flag = true;
  f = Split(Encode(x));
  ASSERT_EQ(f.size(), 2u);
  EXPECT_TRUE(f[1].critical);
  EXPECT_FALSE(f[0].critical);
}

TEST(EngineTagged, SkipsUnknownFields) {
  std::string in = Encode(Full());
  tagged::PutNumber(&in, 40, 5, 5, false);
  tagged::PutNumber(&in, 41, ~0ull, ~0ull, false);
  tagged::PutBytes(&in, 42, "a newer field", false);
  // ... also inside a nested record.
  std::vector<Field> f = Split(in);
  std::string inner;
  tagged::AppendFields(&inner, Inner{7, "seven"});
  tagged::PutBytes(&inner, 9, "newer", false);
  for (Field& x : f) {
    if (x.tag == 13) x.bytes = inner;
  }
  Outer back;
  Status s = Decode(Join(f), &back);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(back == Full());
}

TEST(EngineTagged, RefusesUnknownCriticalFields) {
  std::string in = Encode(Full());
  tagged::PutNumber(&in, 19, 1, 1, true);
  Outer back;
  Status s = Decode(in, &back);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kNotSupported);
  EXPECT_EQ(s.message(),
            "test section: field 19 is required by the image but unknown to this ckpt (image written by a "
            "newer ckpt)");
  // In a nested record: named by its path.
  std::string inner;
  tagged::PutBytes(&inner, 9, "newer", true);
  std::string nested;
  tagged::PutBytes(&nested, 14, inner, false);
  s = Decode(nested, &back);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kNotSupported);
  EXPECT_NE(s.message().find("test section: field 9 of inners is required"), std::string::npos)
      << s.message();
}

TEST(EngineTagged, AbsentFieldsKeepTheirDefaults) {
  std::string in;
  tagged::PutNumber(&in, 2, 9, 9, false);
  Outer back;
  back.text = "not touched";
  ASSERT_TRUE(Decode(in, &back).ok());
  EXPECT_EQ(back.u64, 9u);
  EXPECT_EQ(back.i32, -1);
  EXPECT_EQ(back.text, "not touched");
  Outer empty;
  ASSERT_TRUE(Decode("", &empty).ok());
  EXPECT_TRUE(empty == Outer{});
}

TEST(EngineTagged, FieldsInAnyOrder) {
  std::string full = Encode(Full());
  std::vector<Field> f = Split(full);  // views into `full`
  ASSERT_GT(f.size(), 10u);
  std::vector<Field> reversed(f.rbegin(), f.rend());
  Outer back;
  Status s = Decode(Join(reversed), &back);
  ASSERT_TRUE(s.ok()) << s.message();
  // Repeated fields keep the order of their own elements.
  Outer want = Full();
  std::reverse(want.strings.begin(), want.strings.end());
  std::reverse(want.inners.begin(), want.inners.end());
  std::reverse(want.pair.begin(), want.pair.end());
  EXPECT_TRUE(back == want);
  std::mt19937 rng(7);
  std::vector<Field> scalars;
  for (const Field& x : f) {
    if (x.tag < 12 || x.tag == 13 || x.tag == 16) scalars.push_back(x);
  }
  for (int i = 0; i < 20; ++i) {
    std::shuffle(scalars.begin(), scalars.end(), rng);
    Outer a, b;
    ASSERT_TRUE(Decode(Join(scalars), &a).ok());
    std::vector<Field> sorted = scalars;
    std::sort(sorted.begin(), sorted.end(), [](const Field& x, const Field& y) { return x.tag < y.tag; });
    ASSERT_TRUE(Decode(Join(sorted), &b).ok());
    EXPECT_TRUE(a == b);
  }
}

TEST(EngineTagged, RefusesMalformedRecordsAsCorruption) {
  auto key = [](std::uint32_t tag, int wire) {
    std::string o;
    PutVarint(&o, std::uint64_t{tag} << 3 | static_cast<std::uint64_t>(wire));
    return o;
  };
  std::string packed_too_long;
  tagged::PutBytes(&packed_too_long, 9, std::string("\x01\x02\x03\x04\x05", 5), false);
  std::string triple_short;
  tagged::PutBytes(&triple_short, 11, std::string("\x01\x02", 2), false);
  std::string packed_truncated;
  tagged::PutBytes(&packed_truncated, 9, std::string("\x80", 1), false);
  std::string pair_short;
  tagged::PutBytes(&pair_short, 15, "", false);
  std::string dup;
  tagged::PutNumber(&dup, 2, 1, 1, false);
  tagged::PutNumber(&dup, 2, 2, 2, false);
  std::string nested_bad;
  tagged::PutBytes(&nested_bad, 13, key(1, 3), false);
  std::vector<std::pair<const char*, std::string>> cases = {
      {"truncated key", std::string("\x80", 1)},
      {"key without value (varint)", key(2, 0)},
      {"key without value (fixed64)", key(2, 1) + "1234"},
      {"key without value (bytes)", key(8, 2)},
      {"length past the end", key(8, 2) + "\x05" + "abc"},
      {"wire type 3", key(2, 3) + "\x01"},
      {"unknown field with wire type 3", key(99, 3) + "\x01"},
      {"tag 0", key(0, 0) + "\x01"},
      {"tag too large",
       [] {
         std::string o;
         PutVarint(&o, std::uint64_t{1} << 40);
         return o + "\x01";
       }()},
      {"varint too long", key(2, 0) + std::string(10, '\xff') + "\x01"},
      {"wrong wire type for a number", key(2, 2) + "\x01" + "a"},
      {"wrong wire type for a string", key(8, 0) + "\x01"},
      {"wrong wire type for a record", key(13, 0) + "\x01"},
      {"u8 out of range", key(4, 0) + "\x80\x02"},
      {"i16 out of range", key(5, 0) + "\x80\x80\x04"},
      {"bool 2", key(6, 0) + "\x02"},
      {"more elements than Max (packed)", packed_too_long},
      {"array with too few elements", triple_short},
      {"packed element truncated", packed_truncated},
      {"array of records incomplete", pair_short},
      {"scalar twice", dup},
      {"malformed nested record", nested_bad},
  };
  std::string many;
  for (int i = 0; i < 4; ++i) tagged::PutBytes(&many, 12, "s", false);
  cases.push_back({"more elements than Max (repeated)", many});
  std::string three;
  for (int i = 0; i < 3; ++i) tagged::PutBytes(&three, 15, "", false);
  cases.push_back({"array of records with too many elements", three});
  for (const auto& [what, in] : cases) {
    Status s = DecodeBytes(in);
    EXPECT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.code(), Code::kCorruption) << what << ": " << s.message();
    EXPECT_NE(s.message().find("malformed test section"), std::string::npos) << s.message();
  }
}

// Every cut and every damaged byte decodes or fails cleanly (the reads are
// bounds-checked); a cut inside a field always fails.
TEST(EngineTagged, TruncatedAndDamagedRecordsNeverCrash) {
  std::string in = Encode(Full());
  std::vector<std::size_t> boundaries = {0};
  std::string rebuilt;
  for (const Field& f : Split(in)) {
    rebuilt += Join({f});
    boundaries.push_back(rebuilt.size());
  }
  ASSERT_EQ(rebuilt, in);
  for (std::size_t n = 0; n < in.size(); ++n) {
    Status s = DecodeBytes(in.substr(0, n));
    bool at_boundary = std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
    if (!at_boundary) {
      EXPECT_FALSE(s.ok()) << n;
    }
  }
  std::mt19937 rng(42);
  for (int i = 0; i < 5000; ++i) {
    std::string bad = in;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    DecodeBytes(bad).IgnoreError();
  }
}

struct Broken {
  int a = 0, b = 0;
};
template <class IO>
void Fields(IO& io, Broken& x) {
  io(1, "a", x.a);
  io(1, "b", x.b);  // the same tag twice
}

TEST(EngineTaggedDeathTest, BrokenFieldListStops) {
  EXPECT_DEATH(
      {
        std::string o;
        tagged::AppendFields(&o, Broken{});
      },
      "field list");
}

}  // namespace ckpt::engine::tagged_test
