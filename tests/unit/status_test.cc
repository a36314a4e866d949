#include "util/status.h"

#include <gtest/gtest.h>

#include "util/bytes.h"

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

}  // namespace
}  // namespace ckpt
