// The C API refuses bad arguments with an error code and a reason, never a
// crash or an exit: NULL session, NULL/empty name, NULL data, unknown type,
// duplicate and late registration, unbalanced stages, bad argv; and, when
// opened with CKPT_OPEN_RETURN_ERRORS, failed resumes and bad options.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "ckpt/ckpt.h"
#include "temp_dir_test.h"

namespace {

namespace fs = std::filesystem;

class CApiTest : public ckpt::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    setenv("CKPT_DIR", dir_.c_str(), 1);
    setenv("CKPT_QUIET", "1", 1);
  }
  void TearDown() override {
    unsetenv("CKPT_DIR");
    unsetenv("CKPT_QUIET");
    TempDirTest::TearDown();
  }
  ckpt_session* Open() {
    int argc = 1;
    return ckpt_open(&argc, argv_);
  }
  std::vector<std::string> Files() {
    std::vector<std::string> v;
    for (auto& e : fs::directory_iterator(dir_))
      if (e.is_regular_file()) v.push_back(e.path().filename());
    std::sort(v.begin(), v.end());
    return v;
  }
  char name_[8] = "capi";
  char* argv_[2] = {name_, nullptr};
};

TEST_F(CApiTest, NullDataIsRefusedAndTheCheckpointStillWorks) {
  ckpt_session* s = Open();
  ASSERT_NE(s, nullptr);
  std::int32_t ok[2] = {1, 2};
  EXPECT_EQ(ckpt_register(s, "x", CKPT_I32, nullptr, 4), CKPT_ERR_INVALID);
  std::string why = ckpt_last_error(s);
  EXPECT_NE(why.find("'x'"), std::string::npos) << why;
  EXPECT_NE(why.find("NULL"), std::string::npos) << why;
  EXPECT_EQ(ckpt_register(s, "ok", CKPT_I32, ok, 2), CKPT_OK);
  EXPECT_EQ(ckpt_register(s, "none", CKPT_I32, nullptr, 0), CKPT_OK);  // zero elements need no data
  EXPECT_EQ(ckpt_checkpoint(s), CKPT_CHECKPOINTED) << ckpt_last_error(s);
  EXPECT_EQ(Files(), std::vector<std::string>{"capi.000001.ckpt"});  // no .tmp left behind
  ckpt_close(s);
}

TEST_F(CApiTest, EveryEntryPointRefusesANullSession) {
  std::int32_t x = 0;
  EXPECT_EQ(ckpt_register(nullptr, "x", CKPT_I32, &x, 1), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_stage_begin(nullptr, "init"), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_stage_end(nullptr), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_safepoint(nullptr), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_checkpoint(nullptr), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_request(nullptr, 1), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_resumed(nullptr), 0);
  EXPECT_STREQ(ckpt_last_image(nullptr), "");
  EXPECT_NE(std::string(ckpt_last_error(nullptr)).find("NULL"), std::string::npos);
  ckpt_close(nullptr);
}

TEST_F(CApiTest, BadNamesTypesAndDuplicatesAreRefusedWithoutEndingTheProcess) {
  ckpt_session* s = Open();
  ASSERT_NE(s, nullptr);
  std::int32_t a = 1, b = 2;
  EXPECT_EQ(ckpt_register(s, nullptr, CKPT_I32, &a, 1), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_register(s, "", CKPT_I32, &a, 1), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_register(s, "t", static_cast<ckpt_type>(99), &a, 1), CKPT_ERR_INVALID);
  EXPECT_NE(std::string(ckpt_last_error(s)).find("unknown type 99"), std::string::npos) << ckpt_last_error(s);
  EXPECT_EQ(ckpt_register(s, "a", CKPT_I32, &a, 1), CKPT_OK);
  EXPECT_EQ(ckpt_register(s, "a", CKPT_I32, &b, 1), CKPT_ERR_DUPLICATE);
  EXPECT_NE(std::string(ckpt_last_error(s)).find("'a' is registered twice"), std::string::npos);
  EXPECT_EQ(ckpt_register(s, "big", CKPT_F64, &a, static_cast<size_t>(-1)), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_stage_begin(s, nullptr), CKPT_ERR_INVALID);
  EXPECT_EQ(ckpt_stage_end(s), CKPT_ERR_INVALID);  // no stage open
  EXPECT_EQ(ckpt_stage_begin(s, "init"), 1);
  EXPECT_EQ(ckpt_stage_end(s), CKPT_OK);
  EXPECT_EQ(ckpt_safepoint(s), CKPT_NONE);
  EXPECT_EQ(ckpt_register(s, "late", CKPT_I32, &b, 1), CKPT_ERR_LATE);
  EXPECT_NE(std::string(ckpt_last_error(s)).find("'late' is registered after the first safepoint"),
            std::string::npos)
      << ckpt_last_error(s);
  EXPECT_EQ(ckpt_request(s, 0), CKPT_OK);
  EXPECT_EQ(ckpt_safepoint(s), CKPT_CHECKPOINTED) << ckpt_last_error(s);
  EXPECT_EQ(std::string(ckpt_last_error(s)), "");
  ckpt_close(s);
}

// An image with x = {1, 2} (i32) and y = 7.5 (f64); its path.
std::string WriteImage(ckpt_session* s) {
  static std::int32_t x[2] = {1, 2};
  static double y = 7.5;
  EXPECT_EQ(ckpt_register(s, "x", CKPT_I32, x, 2), CKPT_OK);
  EXPECT_EQ(ckpt_register(s, "y", CKPT_F64, &y, 1), CKPT_OK);
  EXPECT_EQ(ckpt_checkpoint(s), CKPT_CHECKPOINTED) << ckpt_last_error(s);
  std::string path = ckpt_last_image(s);
  ckpt_close(s);
  return path;
}

TEST_F(CApiTest, ReturnErrorsFlagGivesFailedResumesAsCodes) {
  std::string image = WriteImage(Open());
  std::string resume = "--ckpt-resume=" + image;
  char opt[512];
  std::snprintf(opt, sizeof opt, "%s", resume.c_str());
  char* argv[3] = {name_, opt, nullptr};
  // A variable of another type: CKPT_ERR_RESUME, the reason names it; the
  // process goes on.
  int argc = 2;
  ckpt_session* s = ckpt_open_flags(&argc, argv, CKPT_OPEN_RETURN_ERRORS);
  ASSERT_NE(s, nullptr) << ckpt_open_error();
  EXPECT_EQ(argc, 1);
  EXPECT_STREQ(ckpt_open_error(), "");
  double wrong[2] = {0, 0};
  EXPECT_EQ(ckpt_register(s, "x", CKPT_F64, wrong, 2), CKPT_ERR_RESUME);
  std::string why = ckpt_last_error(s);
  EXPECT_NE(why.find("'x'"), std::string::npos) << why;
  EXPECT_NE(why.find("array<i32,2>"), std::string::npos) << why;
  ckpt_close(s);
  // A variable the program no longer registers: the first safepoint says so.
  argv[1] = opt;
  argc = 2;
  s = ckpt_open_flags(&argc, argv, CKPT_OPEN_RETURN_ERRORS);
  ASSERT_NE(s, nullptr) << ckpt_open_error();
  std::int32_t x[2] = {0, 0};
  EXPECT_EQ(ckpt_register(s, "x", CKPT_I32, x, 2), CKPT_OK);
  EXPECT_EQ(x[0], 1);
  EXPECT_EQ(x[1], 2);
  EXPECT_EQ(ckpt_safepoint(s), CKPT_ERR_RESUME);
  why = ckpt_last_error(s);
  EXPECT_NE(why.find("'y'"), std::string::npos) << why;
  ckpt_close(s);
  // Both variables: resumed.
  argv[1] = opt;
  argc = 2;
  s = ckpt_open_flags(&argc, argv, CKPT_OPEN_RETURN_ERRORS);
  ASSERT_NE(s, nullptr) << ckpt_open_error();
  double y = 0;
  EXPECT_EQ(ckpt_register(s, "x", CKPT_I32, x, 2), CKPT_OK);
  EXPECT_EQ(ckpt_register(s, "y", CKPT_F64, &y, 1), CKPT_OK);
  EXPECT_EQ(ckpt_safepoint(s), CKPT_RESUMED) << ckpt_last_error(s);
  EXPECT_EQ(y, 7.5);
  ckpt_close(s);
}

TEST_F(CApiTest, ReturnErrorsFlagGivesBadOptionsAndMissingImagesAsNull) {
  char codec[] = "--ckpt-codec=nope";
  char* argv[3] = {name_, codec, nullptr};
  int argc = 2;
  EXPECT_EQ(ckpt_open_flags(&argc, argv, CKPT_OPEN_RETURN_ERRORS), nullptr);
  EXPECT_NE(std::string(ckpt_open_error()).find("nope"), std::string::npos) << ckpt_open_error();
  std::string missing = "--ckpt-resume=" + (fs::path(dir_) / "missing.000001.ckpt").string();
  std::vector<char> m(missing.begin(), missing.end());
  m.push_back('\0');
  argv[1] = m.data();
  argc = 2;
  EXPECT_EQ(ckpt_open_flags(&argc, argv, CKPT_OPEN_RETURN_ERRORS), nullptr);
  EXPECT_NE(std::string(ckpt_open_error()).find("missing.000001.ckpt"), std::string::npos)
      << ckpt_open_error();
  argc = 1;
  EXPECT_EQ(ckpt_open_flags(&argc, argv, 2u), nullptr);  // an unknown flag
  ckpt_session* s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_STREQ(ckpt_open_error(), "");
  ckpt_close(s);
}

TEST_F(CApiTest, WithoutTheFlagAFailedResumeStillEndsTheProgram) {
  std::string image = WriteImage(Open());
  std::string resume = "--ckpt-resume=" + image;
  std::vector<char> opt(resume.begin(), resume.end());
  opt.push_back('\0');
  char* argv[3] = {name_, opt.data(), nullptr};
  auto resume_wrong_type = [&] {
    int argc = 2;
    ckpt_session* s = ckpt_open(&argc, argv);
    double wrong[2] = {0, 0};
    ckpt_register(s, "x", CKPT_F64, wrong, 2);
  };
  EXPECT_EXIT(resume_wrong_type(), ::testing::ExitedWithCode(3), "'x'");
}

TEST_F(CApiTest, InconsistentArgvIsRefused) {
  int argc = 2;
  EXPECT_EQ(ckpt_open(&argc, nullptr), nullptr);
  char* holes[3] = {name_, nullptr, nullptr};
  EXPECT_EQ(ckpt_open(&argc, holes), nullptr);
  int none = 0;
  ckpt_session* s = ckpt_open(&none, nullptr);  // no arguments at all is fine
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(none, 0);
  ckpt_close(s);
  s = ckpt_open(nullptr, nullptr);
  ASSERT_NE(s, nullptr);
  ckpt_close(s);
}

}  // namespace
