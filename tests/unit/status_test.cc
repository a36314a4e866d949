#include "util/status.h"

#include <gtest/gtest.h>

#include "util/bytes.h"
#include "util/utf8.h"

namespace ckpt {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  *out = h;
  return Status::Ok();
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status::Ok().ok());
  Status e = Corruption("bad frame");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.code(), Code::kCorruption);
  EXPECT_EQ(e.WithContext("img").message(), "img: bad frame");
}

TEST(Status, ResultPropagates) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  Status st = UseHalf(3, &out);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_EQ(st.message(), "odd: 3");
}

TEST(Bytes, VarintRoundTrip) {
  std::string s;
  const std::uint64_t vals[] = {0, 1, 127, 128, 300, 1ull << 35, ~0ull};
  for (auto v : vals) PutVarint(&s, v);
  ByteReader r(s);
  for (auto v : vals) EXPECT_EQ(r.Varint(), v);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.empty());
}

TEST(Bytes, VarintOverlongRejected) {
  std::string s(11, '\xff');
  ByteReader r(s);
  r.Varint();
  EXPECT_FALSE(r.ok());
}

TEST(Bytes, FixedIsLittleEndian) {
  std::string s;
  PutU32(&s, 0x01020304u);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(static_cast<unsigned char>(s[0]), 0x04);
  EXPECT_EQ(static_cast<unsigned char>(s[3]), 0x01);
}

TEST(Utf8Test, ValidatesStrictly) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // e-acute, euro, emoji
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(Utf8Test, JsonBytesIsLossless) {
  EXPECT_EQ(JsonBytes("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
  EXPECT_EQ(JsonBytes(std::string("s\xffp")), "[115, 255, 112]");
  EXPECT_EQ(JsonBytes(std::string("\x1b[31m")), "\"\\u001b[31m\"");
}

}  // namespace
}  // namespace ckpt
