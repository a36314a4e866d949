// Reading an image while it is still being written (ImageReader::OpenStreamed,
// platform::OpenFollowedFile, lib::ResumeImage): the same bytes as a whole
// read, sections found in any order, and damage or a writer that stops
// anywhere gives an error, never a hang or a wrong value.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "image/codec.h"
#include "image/reader.h"
#include "image/writer.h"
#include "image_test_util.h"
#include "lib/resume_image.h"
#include "lib/section_io.h"
#include "platform/env.h"

#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace ckpt::image {
namespace {

std::vector<std::string> Payloads() {
  return {"", "x", Pattern(5000, 1), Pattern(300000, 2), std::string(70000, '\0')};
}

// Every section in file order, read through open-ended streams; then Finish.
Status ReadAllStreamed(ImageReader* r, std::vector<std::string>* out) {
  while (true) {
    ASSIGN_OR_RETURN(const SectionInfo* s, r->NextSection());
    if (s == nullptr) break;
    ASSIGN_OR_RETURN(std::string data, r->ReadSection(*s));
    out->push_back(std::move(data));
  }
  return r->Finish();
}

class StreamedCodecTest : public ::testing::TestWithParam<CodecId> {};

TEST_P(StreamedCodecTest, SameBytesAndTableAsAWholeRead) {
  if (!CodecAvailable(GetParam())) GTEST_SKIP() << "codec not in this build";
  std::vector<std::string> payloads = Payloads();
  std::string img = BuildImage(GetParam(), 64 * 1024, payloads);
  auto r = ImageReader::OpenStreamed(std::make_unique<StringSource>(img, "img"), img.size());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE((*r)->sections().empty());  // not before Finish
  std::vector<std::string> got;
  Status st = ReadAllStreamed(r->get(), &got);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(got, payloads);
  auto whole = ImageReader::Open(std::make_unique<StringSource>(img, "img"));
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ((*r)->sections().size(), (*whole)->sections().size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ((*r)->sections()[i].offset, (*whole)->sections()[i].offset);
    EXPECT_EQ((*r)->sections()[i].raw_size, payloads[i].size());
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, StreamedCodecTest,
                         ::testing::Values(CodecId::kNone, CodecId::kZstd, CodecId::kZlib),
                         [](const auto& info) { return std::string(CodecName(info.param)); });

TEST(StreamedImage, SeekFindsSectionsOutOfOrderAndReportsAbsentOnes) {
  std::vector<std::string> payloads = Payloads();
  std::string img = BuildImage(CodecId::kNone, 4096, payloads);
  auto r = ImageReader::OpenStreamed(std::make_unique<StringSource>(img, "img"), img.size());
  ASSERT_TRUE(r.ok());
  auto s3 = (*r)->Seek(4, "s3");  // passes s0..s2 without reading their data
  ASSERT_TRUE(s3.ok() && *s3 != nullptr);
  auto d3 = (*r)->ReadSection(**s3);
  ASSERT_TRUE(d3.ok()) << d3.status().message();
  EXPECT_EQ(*d3, payloads[3]);
  auto s2 = (*r)->Seek(3, "s2");  // behind: already found, sizes known
  ASSERT_TRUE(s2.ok() && *s2 != nullptr);
  EXPECT_EQ((*s2)->raw_size, payloads[2].size());
  auto d2 = (*r)->ReadSection(**s2);
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(*d2, payloads[2]);
  auto none = (*r)->Seek(3, "nope");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
  EXPECT_TRUE((*r)->Finish().ok());
}

TEST(StreamedImage, FindAndKnownSeeOnlyTheSectionsFoundSoFar) {
  std::vector<std::string> payloads = Payloads();
  std::string img = BuildImage(CodecId::kNone, 4096, payloads);
  auto r = ImageReader::OpenStreamed(std::make_unique<StringSource>(img, "img"), img.size());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)->Known().empty());
  EXPECT_EQ((*r)->Find(2, "s1"), nullptr);  // not read yet
  auto s2 = (*r)->Seek(3, "s2");
  ASSERT_TRUE(s2.ok() && *s2 != nullptr);
  ASSERT_EQ((*r)->Known().size(), 3u);
  const SectionInfo* s1 = (*r)->Find(2, "s1");
  ASSERT_NE(s1, nullptr);
  EXPECT_EQ(s1->raw_size, payloads[1].size());  // passed: its sizes are known
  EXPECT_EQ((*r)->Find(3), *s2);
  EXPECT_EQ((*r)->Find(4, "s3"), nullptr);
  auto d1 = (*r)->ReadSection(*s1);
  ASSERT_TRUE(d1.ok());
  EXPECT_EQ(*d1, payloads[1]);
  ASSERT_TRUE((*r)->Finish().ok());
  // After Finish: every section, the ones handed out before at the same address.
  EXPECT_EQ((*r)->Known().size(), payloads.size());
  EXPECT_EQ((*r)->Find(2, "s1"), s1);
  EXPECT_NE((*r)->Find(5, "s4"), nullptr);
}

TEST(StreamedImage, ValueReaderFindsTheEndAndLeftoverBytes) {
  std::string img = BuildImage(CodecId::kNone, 1000, {Pattern(10000, 3)});
  auto r = ImageReader::OpenStreamed(std::make_unique<StringSource>(img, "img"), img.size());
  ASSERT_TRUE(r.ok());
  auto s = (*r)->NextSection();
  ASSERT_TRUE(s.ok() && *s != nullptr);
  auto stream = (*r)->OpenSection(**s);
  ASSERT_TRUE(stream.ok());
  EXPECT_GE((*stream)->remaining(), 10000u);  // a bound while the end is not known
  lib::SectionReader sr(stream->get());
  std::string part(9000, '\0');
  ASSERT_TRUE(sr.Bytes(part.data(), part.size()));
  sr.FinishSection();
  EXPECT_FALSE(sr.ok());
  EXPECT_NE(sr.error().find("1000 bytes are left over"), std::string::npos) << sr.error();
}

// Cut anywhere, or any byte changed: an error from the sections or Finish.
TEST(StreamedImage, EveryCutAndEveryFlippedByteIsAnError) {
  std::string img = BuildImage(CodecId::kNone, 64, {"abc", Pattern(300, 4), ""});
  for (std::size_t cut = 0; cut < img.size(); ++cut) {
    auto r = ImageReader::OpenStreamed(std::make_unique<StringSource>(img.substr(0, cut), "img"), img.size());
    if (!r.ok()) continue;
    std::vector<std::string> got;
    EXPECT_FALSE(ReadAllStreamed(r->get(), &got).ok()) << "cut at " << cut;
  }
  for (std::size_t i = 0; i < img.size(); ++i) {
    std::string bad = img;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    auto r = ImageReader::OpenStreamed(std::make_unique<StringSource>(bad, "img"), img.size());
    if (!r.ok()) continue;
    std::vector<std::string> got;
    EXPECT_FALSE(ReadAllStreamed(r->get(), &got).ok()) << "byte " << i;
  }
}

TEST(StreamedImage, ALimitBelowTheImageIsAnError) {
  std::string img = BuildImage(CodecId::kNone, 64, {Pattern(300, 5)});
  auto r = ImageReader::OpenStreamed(std::make_unique<StringSource>(img, "img"), img.size() - 40);
  ASSERT_TRUE(r.ok());
  std::vector<std::string> got;
  Status st = ReadAllStreamed(r->get(), &got);
  EXPECT_FALSE(st.ok());
}

TEST(ResumeFollow, EncodesAndParses) {
  lib::ResumeFollow f{123456, 42, "/spool/x y/image.ckpt"};
  auto back = lib::ParseResumeFollow(lib::EncodeResumeFollow(f));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->limit, 123456u);
  EXPECT_EQ(back->writer, 42);
  EXPECT_EQ(back->path, "/spool/x y/image.ckpt");
  EXPECT_FALSE(lib::ParseResumeFollow("0 1 /x").has_value());
  EXPECT_FALSE(lib::ParseResumeFollow("12 /x").has_value());
  EXPECT_FALSE(lib::ParseResumeFollow("12 x /x").has_value());
}

#ifndef _WIN32

class FollowedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ckpt-follow-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "image.ckpt").string();
    std::ofstream(path_).close();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Appends `bytes` in `pieces` with a pause between them; then the marker if `complete`.
  std::thread Writer(std::string bytes, int pieces, bool complete) {
    return std::thread([this, bytes = std::move(bytes), pieces, complete] {
      std::ofstream out(path_, std::ios::binary | std::ios::app);
      std::size_t step = bytes.size() / pieces + 1;
      for (std::size_t at = 0; at < bytes.size(); at += step) {
        out.write(bytes.data() + at, static_cast<std::streamsize>(std::min(step, bytes.size() - at)));
        out.flush();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      out.close();
      if (complete) std::ofstream(lib::CompleteMarker(path_)).close();
    });
  }
  platform::FollowSpec Spec() const {
    platform::FollowSpec s;
    s.complete_marker = lib::CompleteMarker(path_);
    s.writer_pid = ::getpid();
    s.stall_timeout_ms = 10 * 1000;
    return s;
  }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(FollowedFileTest, ReadsAsTheWriterAppends) {
  std::vector<std::string> payloads = Payloads();
  std::string img = BuildImage(CodecId::kNone, 8192, payloads);
  std::thread w = Writer(img, 40, true);
  auto src = platform::OpenFollowedFile(path_, Spec());
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto r = ImageReader::OpenStreamed(std::move(src).value(), 1 << 30);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> got;
  Status st = ReadAllStreamed(r->get(), &got);
  w.join();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(got, payloads);
}

TEST_F(FollowedFileTest, AnImageCutShortIsAnErrorOnceComplete) {
  std::string img = BuildImage(CodecId::kNone, 8192, Payloads());
  std::thread w = Writer(img.substr(0, img.size() / 2), 5, true);
  auto src = platform::OpenFollowedFile(path_, Spec());
  ASSERT_TRUE(src.ok());
  auto r = ImageReader::OpenStreamed(std::move(src).value(), 1 << 30);
  std::vector<std::string> got;
  Status st = r.ok() ? ReadAllStreamed(r->get(), &got) : r.status();
  w.join();
  EXPECT_EQ(st.code(), Code::kCorruption) << st.message();
  EXPECT_NE(st.message().find("cut short"), std::string::npos) << st.message();
}

TEST_F(FollowedFileTest, AWriterThatEndedOrStalledIsAnError) {
  std::string img = BuildImage(CodecId::kNone, 8192, Payloads());
  std::ofstream(path_, std::ios::binary).write(img.data(), 100);
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_GT(gone, 0);
  ::waitpid(gone, nullptr, 0);
  platform::FollowSpec spec = Spec();
  spec.writer_pid = gone;
  auto src = platform::OpenFollowedFile(path_, spec);
  ASSERT_TRUE(src.ok());
  std::string buf(200, '\0');
  Status st = (*src)->ReadAt(0, 200, buf.data());
  EXPECT_EQ(st.code(), Code::kIoError) << st.message();
  EXPECT_NE(st.message().find("ended before the image was complete"), std::string::npos) << st.message();
  spec.writer_pid = ::getpid();
  spec.stall_timeout_ms = 100;
  auto src2 = platform::OpenFollowedFile(path_, spec);
  ASSERT_TRUE(src2.ok());
  st = (*src2)->ReadAt(0, 200, buf.data());
  EXPECT_EQ(st.code(), Code::kTimeout) << st.message();
  EXPECT_TRUE((*src2)->ReadAt(0, 100, buf.data()).ok());
}

#endif

}  // namespace
}  // namespace ckpt::image
