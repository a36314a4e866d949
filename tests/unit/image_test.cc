// The image container: round trips with every codec, framing, and that
// damaged images (truncated anywhere, any byte flipped) give a clear error.
#include <gtest/gtest.h>

#include <random>

#include "image/checksum.h"
#include "image/codec.h"
#include "image/format.h"
#include "image/reader.h"
#include "image/section_types.h"
#include "image/writer.h"
#include "image_test_util.h"
#include "util/bytes.h"

namespace ckpt::image {
namespace {

Result<std::unique_ptr<ImageReader>> Open(const std::string& bytes) {
  return ImageReader::Open(std::make_unique<StringSource>(bytes, "img"));
}

class CodecTest : public ::testing::TestWithParam<CodecId> {};

TEST_P(CodecTest, RoundTrip) {
  if (!CodecAvailable(GetParam())) GTEST_SKIP() << "codec not in this build";
  std::vector<std::string> payloads = {"", "x", Pattern(1000, 1), Pattern(300000, 2),
                                       std::string(200000, '\0')};
  std::string img = BuildImage(GetParam(), 64 * 1024, payloads);
  auto r = Open(img);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ((*r)->sections().size(), payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const SectionInfo& s = (*r)->sections()[i];
    EXPECT_EQ(s.name, "s" + std::to_string(i));
    EXPECT_EQ(s.attrs, "attr" + std::to_string(i));
    EXPECT_EQ(s.raw_size, payloads[i].size());
    EXPECT_EQ(s.codec, GetParam());
    auto data = (*r)->ReadSection(s);
    ASSERT_TRUE(data.ok()) << data.status().message();
    EXPECT_EQ(*data, payloads[i]);
  }
  EXPECT_TRUE((*r)->VerifyAll().ok());
  if (GetParam() != CodecId::kNone) {
    EXPECT_LT(img.size(), 300000u + 200000u);
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, CodecTest, ::testing::Values(CodecId::kNone, CodecId::kZstd, CodecId::kZlib),
                         [](const auto& info) { return std::string(CodecName(info.param)); });

TEST(Image, LargeWritesCompressFramesInParallelInOrder) {
  for (CodecId codec : {CodecId::kZstd, CodecId::kZlib}) {
    if (!CodecAvailable(codec)) continue;
    StringSink sink;
    WriterOptions o;
    o.codec = codec;
    o.frame_size = 4096;
    ImageWriter w(&sink, ImageKind::kProgram, o);
    ASSERT_TRUE(w.Begin().ok());
    std::string big = Pattern(4096 * 37 + 123, 9);
    ASSERT_TRUE(w.BeginSection(1, "big", "").ok());
    ASSERT_TRUE(w.Write("x", 1).ok());  // a partial frame first
    ASSERT_TRUE(w.Write(big.data(), big.size()).ok());
    ASSERT_TRUE(w.EndSection().ok());
    ASSERT_TRUE(w.BeginSection(2, "aligned", "").ok());
    ASSERT_TRUE(w.Write(big.data(), 4096 * 16).ok());  // whole frames from the start
    ASSERT_TRUE(w.EndSection().ok());
    ASSERT_TRUE(w.Finish().ok());
    auto r = Open(sink.buffer());
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*(*r)->ReadSection((*r)->sections()[0]), "x" + big);
    EXPECT_EQ(*(*r)->ReadSection((*r)->sections()[1]), big.substr(0, 4096 * 16));
    EXPECT_EQ((*r)->sections()[1].frames, 16u);
  }
}

TEST(Image, PartialReadsAcrossFrames) {
  std::string p = Pattern(100000, 3);
  std::string img = BuildImage(CodecId::kNone, 4096, {p});
  auto r = Open(img);
  ASSERT_TRUE(r.ok());
  auto s = (*r)->OpenSection((*r)->sections()[0]);
  ASSERT_TRUE(s.ok());
  std::string got;
  std::size_t step = 1;
  while ((*s)->remaining() > 0) {
    std::size_t n = std::min<std::size_t>(step, (*s)->remaining());
    std::string buf(n, '\0');
    ASSERT_TRUE((*s)->Read(buf.data(), n).ok());
    got += buf;
    step = step * 2 + 1;
  }
  EXPECT_EQ(got, p);
  EXPECT_TRUE((*s)->Drain().ok());
  char c;
  EXPECT_FALSE((*s)->Read(&c, 1).ok());
}

TEST(Image, FramesHashedByTheCallerMixWithBufferedWrites) {
  std::string p = Pattern(300000, 5);
  StringSink sink;
  WriterOptions o;
  o.frame_size = 65536;
  ImageWriter w(&sink, ImageKind::kProcess, o);
  ASSERT_TRUE(w.Begin().ok());
  ASSERT_TRUE(w.BeginSection(1, "pages", "").ok());
  ASSERT_TRUE(w.Write(p.data(), 1000).ok());  // buffered: flushed before the next frame
  ASSERT_TRUE(w.WriteFrameWithChecksum(p.data() + 1000, 99000, Checksum64(p.data() + 1000, 99000)).ok());
  ASSERT_TRUE(
      w.WriteFrameWithChecksum(p.data() + 100000, 200000, Checksum64(p.data() + 100000, 200000)).ok());
  ASSERT_TRUE(w.EndSection().ok());
  ASSERT_TRUE(w.Finish().ok());
  auto r = Open(sink.buffer());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto got = (*r)->ReadSection((*r)->sections()[0]);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, p);

  // A wrong checksum from the caller is caught when reading.
  StringSink bad;
  ImageWriter w2(&bad, ImageKind::kProcess, o);
  ASSERT_TRUE(w2.Begin().ok());
  ASSERT_TRUE(w2.BeginSection(1, "pages", "").ok());
  ASSERT_TRUE(w2.WriteFrameWithChecksum(p.data(), 4096, Checksum64(p.data(), 4096) ^ 1).ok());
  ASSERT_TRUE(w2.EndSection().ok());
  ASSERT_TRUE(w2.Finish().ok());
  auto r2 = Open(bad.buffer());
  ASSERT_TRUE(r2.ok());
  auto got2 = (*r2)->ReadSection((*r2)->sections()[0]);
  EXPECT_FALSE(got2.ok());
  EXPECT_EQ(got2.status().code(), Code::kCorruption);

  // Compressed sections hash their own frames.
  StringSink z;
  WriterOptions oz;
  oz.codec = CodecId::kZlib;
  ImageWriter w3(&z, ImageKind::kProcess, oz);
  ASSERT_TRUE(w3.Begin().ok());
  ASSERT_TRUE(w3.BeginSection(1, "pages", "").ok());
  EXPECT_FALSE(w3.WriteFrameWithChecksum(p.data(), 4096, 0).ok());
}

TEST(Image, EmptyImage) {
  std::string img = BuildImage(CodecId::kNone, 4096, {});
  auto r = Open(img);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)->sections().empty());
}

TEST(Image, RejectsNonImage) {
  auto r = Open("hello world, this is not an image at all, no no no");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a ckpt image"), std::string::npos);
}

// Rewrites the header's major version and fixes its checksum.
std::string WithMajor(std::string img, std::uint16_t major) {
  img[8] = static_cast<char>(major & 0xff);
  img[9] = static_cast<char>(major >> 8);
  std::string fixed = img.substr(0, 24);
  PutU64(&fixed, Checksum64(fixed));
  return fixed + img.substr(32);
}

TEST(Image, RejectsNewerMajorVersion) {
  std::string img = BuildImage(CodecId::kNone, 4096, {"abc"});
  ASSERT_TRUE(Open(WithMajor(img, 1)).ok());
  auto r = Open(WithMajor(img, 2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotSupported);
  EXPECT_NE(r.status().message().find("newer"), std::string::npos) << r.status().message();
}

TEST(Image, TruncatedAtEveryOffsetIsAnError) {
  std::string img = BuildImage(CodecId::kNone, 512, {Pattern(3000, 4), "tail"});
  for (std::size_t cut = 0; cut < img.size(); ++cut) {
    auto r = Open(img.substr(0, cut));
    if (!r.ok()) continue;
    ADD_FAILURE() << "a copy cut at " << cut << " of " << img.size() << " bytes opened";
  }
}

TEST(Image, EveryFlippedByteIsDetected) {
  if (!CodecAvailable(CodecId::kZstd)) GTEST_SKIP();
  for (CodecId codec : {CodecId::kNone, CodecId::kZstd}) {
    std::string img = BuildImage(codec, 512, {Pattern(2000, 5), "abc"});
    for (std::size_t i = 0; i < img.size(); ++i) {
      std::string bad = img;
      bad[i] = static_cast<char>(bad[i] ^ 0x20);
      auto r = Open(bad);
      if (!r.ok()) continue;
      Status st = (*r)->VerifyAll();
      EXPECT_FALSE(st.ok()) << "flip at " << i << " (codec " << CodecName(codec) << ") went unnoticed";
    }
  }
}

TEST(Image, MissingCodecNamesIt) {
  if (CodecAvailable(CodecId::kZstd)) {
    // Build lacks nothing; simulate by checking the message of Decompress on a codec id.
    std::string img = BuildImage(CodecId::kZstd, 4096, {Pattern(10000, 6)});
    auto r = Open(img);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->sections()[0].codec, CodecId::kZstd);
  }
  if (!CodecAvailable(CodecId::kZlib) || !CodecAvailable(CodecId::kZstd)) {
    CodecId missing = CodecAvailable(CodecId::kZlib) ? CodecId::kZstd : CodecId::kZlib;
    std::vector<unsigned char> out;
    Status st = Compress(missing, 0, "abc", 3, &out);
    EXPECT_EQ(st.code(), Code::kNotSupported);
    EXPECT_NE(st.message().find(std::string(CodecName(missing))), std::string::npos);
  }
}

// Two sections of one type and name: which one is the variable? Refused
// (`ckpt verify` accepted such an image; a resume took the first).
TEST(Image, DuplicateSectionsAreRefused) {
  StringSink sink;
  ImageWriter w(&sink, ImageKind::kProgram);
  ASSERT_TRUE(w.Begin().ok());
  ASSERT_TRUE(w.AddSection(3, "x", "i32", std::string(4, '\1')).ok());
  ASSERT_TRUE(w.AddSection(4, "x", "", "same name, another type: fine").ok());
  ASSERT_TRUE(w.AddSection(3, "x", "i32", std::string(4, '\2')).ok());
  ASSERT_TRUE(w.Finish().ok());
  auto r = Open(sink.buffer());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("section 'x' (type 3) appears twice"), std::string::npos)
      << r.status().message();
}

// A frame marked compressed in a section stored without a codec is damage
// (exit 3), not an internal error (it was "decompress called for codec
// none", exit 1).
TEST(Image, CompressedFrameInAnUncompressedSectionIsCorruption) {
  std::string payload = Pattern(100, 7);
  std::string img = BuildImage(CodecId::kNone, 4096, {payload});
  std::string raw_header;
  PutU32(&raw_header, 100);
  PutU32(&raw_header, 100 | kFrameStoredRaw);
  std::size_t at = img.find(raw_header);
  ASSERT_NE(at, std::string::npos);
  std::string forged;
  PutU32(&forged, 100);
  PutU32(&forged, 50);  // "compressed to 50 bytes"
  PutU64(&forged, Checksum64(img.data() + at + 16, 50));
  img.replace(at, 16, forged);
  auto r = Open(img);
  ASSERT_TRUE(r.ok()) << r.status().message();
  Status st = (*r)->VerifyAll();
  EXPECT_EQ(st.code(), Code::kCorruption) << st.message();
  EXPECT_NE(st.message().find("marked compressed"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace ckpt::image

namespace ckpt {
namespace {

TEST(SectionTypes, EveryKindTakesItsNumbersFromOneRegistry) {
  EXPECT_EQ(image::SectionTypeName(image::kSecMeta), "meta");
  EXPECT_EQ(image::SectionTypeName(image::kSecMember), "member");
  EXPECT_EQ(image::SectionTypeName(image::kSecCore), "core");
  EXPECT_EQ(image::SectionTypeName(image::kSecShmPages), "shm pages");
  EXPECT_EQ(image::SectionTypeName(0x7777), "");
  // Program 1-15, group 16-31, process 0x0300-0x03FF: no kind strays into another's block.
  for (const auto& t : image::kSectionTypes)
    EXPECT_TRUE(t.type < 32 || (t.type >= 0x0300 && t.type < 0x0400)) << t.name;
}

}  // namespace
}  // namespace ckpt
