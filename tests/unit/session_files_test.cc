// The files a Session writes: images (private by default, never replacing
// another writer's image, truthful about what was written) and the
// registration file (removed on every exit the library sees, kept for a
// waiting `ckpt checkpoint`, failures counted).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ckpt/ckpt.hpp"
#include "fault_env.h"
#include "image/reader.h"
#include "lib/program_image.h"
#include "lib/registration.h"
#include "lib/testing.h"
#include "platform/env.h"
#include "temp_dir_test.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

class SessionFilesTest : public TempDirTest {
 protected:
  void TearDown() override {
    lib::SetEnvForTesting(nullptr);
    TempDirTest::TearDown();
  }
  std::vector<std::string> Files(const fs::path& d) {
    std::vector<std::string> v;
    if (!fs::exists(d)) return v;
    for (auto& e : fs::directory_iterator(d))
      if (!e.is_directory()) v.push_back(e.path().filename());
    std::sort(v.begin(), v.end());
    return v;
  }
  static std::string Read(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static std::string MetaOf(const std::string& path, const std::string& key) {
    auto src = platform::Env::Default()->NewRandomAccessFile(path);
    if (!src.ok()) return "(" + src.status().message() + ")";
    auto r = image::ImageReader::Open(std::move(src).value());
    if (!r.ok()) return "(" + r.status().message() + ")";
    auto md = (*r)->ReadSection(*(*r)->Find(lib::kSectionMeta));
    lib::Meta m;
    if (!md.ok() || !lib::DecodeMeta(*md, &m).ok()) return "(bad meta)";
    return m.Get(key);
  }
  static unsigned Mode(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0xffffffffu;
  }
};

TEST_F(SessionFilesTest, ImagesAreOwnerOnlyUnlessWidened) {
  {
    Session s(Opts());
    s.var("x", 1);
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    EXPECT_EQ(Mode(s.last_image()), 0600u);
  }
  Options o = Opts();
  o.image_mode = 0640;
  Session s(o);
  s.var("x", 1);
  ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
  EXPECT_EQ(Mode(s.last_image()), 0640u);
  o.image_mode = 0200;
  EXPECT_THROW(Session bad(o), Error);
}

// Another writer (a second run of the program, the same image resumed
// twice) commits NAME.000001.ckpt between this one's choice of the number
// and its commit: that image stays, and this checkpoint becomes number 2.
TEST_F(SessionFilesTest, CommitNeverReplacesAnotherWritersImage) {
  testing::FaultEnv env;
  int commits = 0;
  env.before_commit = [&](const std::string& path) {
    if (path.size() > 5 && path.compare(path.size() - 5, 5, ".ckpt") == 0 && commits++ == 0)
      std::ofstream(path) << "the other writer's image";
  };
  lib::SetEnvForTesting(&env);
  Session s(Opts());
  s.var("x", 42);
  ASSERT_EQ(s.checkpoint(), Event::kCheckpointed) << s.last_error();
  EXPECT_EQ(Read(dir_ / "t.000001.ckpt"), "the other writer's image");
  EXPECT_EQ(s.last_image(), (dir_ / "t.000002.ckpt").string());
  EXPECT_EQ(MetaOf(s.last_image(), "image.seq"), "2");
  EXPECT_EQ(Files(dir_), (std::vector<std::string>{"t.000001.ckpt", "t.000002.ckpt"}));
}

TEST_F(SessionFilesTest, AWriterThatLosesEveryNumberReportsFailure) {
  testing::FaultEnv env;
  env.before_commit = [&](const std::string& path) {
    if (path.size() > 5 && path.compare(path.size() - 5, 5, ".ckpt") == 0) std::ofstream(path) << "taken";
  };
  lib::SetEnvForTesting(&env);
  Session s(Opts());
  s.var("x", 42);
  EXPECT_EQ(s.checkpoint(), Event::kFailed);
  EXPECT_NE(s.last_error().find("this checkpoint was not written"), std::string::npos) << s.last_error();
  EXPECT_EQ(s.last_image(), "");
  for (const auto& f : Files(dir_)) EXPECT_EQ(Read(dir_ / f), "taken") << f;  // nothing of ours, no temp file
}

TEST_F(SessionFilesTest, RegistrationCountsFailuresAndGoesWithTheSession) {
  std::string reg = Run() + "/" + std::to_string(::getpid()) + ".json";
  {
    Options o = Opts();
    o.dir = (dir_ / "a-file").string();
    std::ofstream(o.dir) << "not a directory";
    Session s(o);
    ASSERT_TRUE(fs::exists(reg));
    EXPECT_EQ(Mode(reg), 0600u);
    EXPECT_EQ(Mode(Run()), 0700u);
    EXPECT_EQ(s.checkpoint(), Event::kFailed);
    EXPECT_EQ(s.checkpoint(), Event::kFailed);  // the same error again: still counted
    auto r = lib::DecodeRegistration(reg, Read(reg));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->failures, 2u);
    EXPECT_NE(r->last_error.find("a-file"), std::string::npos) << r->last_error;
  }
  EXPECT_FALSE(fs::exists(reg));
  EXPECT_EQ(Files(Run()), std::vector<std::string>{});
}

TEST_F(SessionFilesTest, StaleRegistrationsAreCollectedByTheNextSession) {
  fs::create_directories(Run());
  fs::permissions(Run(), fs::perms::owner_all, fs::perm_options::replace);
  std::ofstream(Run() + "/999999999.json") << "{\"pid\": 999999999, \"exited\": true}";
  std::ofstream(Run() + "/999999999.json.0123456789abcdef.tmp") << "{";
  // A Windows program's (under Wine, sharing the directory): its PID is not ours to judge.
  std::ofstream(Run() + "/999999998.json") << "{\"pid\": 999999998, \"platform\": \"windows-x86_64\"}";
  Session s(Opts());
  EXPECT_EQ(Files(Run()), (std::vector<std::string>{std::to_string(::getpid()) + ".json", "999999998.json"}));
}

// Every exit the library sees removes the registration: the program's own
// std::exit, the library's exit 75 after --ckpt-stop-at, its exit 3 after a
// failed resume.
TEST_F(SessionFilesTest, ExitPathsRemoveTheRegistration) {
  GTEST_FLAG_SET(death_test_style, "fast");
  EXPECT_EXIT(
      {
        Session s(Opts());
        std::exit(7);
      },
      ::testing::ExitedWithCode(7), "");
  EXPECT_EQ(Files(Run()), std::vector<std::string>{});
  EXPECT_EXIT(
      {
        Options o = Opts();
        o.stop_at = 2;
        Session s(o);
        auto& i = s.var("i", 0);
        for (; i < 5; ++i) s.safepoint();
        std::exit(0);
      },
      ::testing::ExitedWithCode(kExitCheckpointed), "");
  EXPECT_EQ(Files(Run()), std::vector<std::string>{});
  std::string image = (dir_ / "t.000001.ckpt").string();
  ASSERT_TRUE(fs::exists(image));
  EXPECT_EXIT(
      {
        Options o = Opts();
        o.resume = image;
        o.throw_on_error = false;
        Session s(o);
        s.var("i", std::string());  // the image holds an int: exit 3
        std::exit(0);
      },
      ::testing::ExitedWithCode(kExitResumeFailed), "");
  EXPECT_EQ(Files(Run()), std::vector<std::string>{});
}

// A checkpoint-and-exit asked from outside (`ckpt checkpoint PID --exit`)
// leaves the registration, marked exited, for the requester to read.
TEST_F(SessionFilesTest, AnExitAskedFromOutsideLeavesTheOutcome) {
  GTEST_FLAG_SET(death_test_style, "fast");
  EXPECT_EXIT(
      {
        Session s(Opts());
        auto& i = s.var("i", 0);
        union sigval v;
        v.sival_int = 3;  // platform::Request::kCheckpointAndExit
        ::sigqueue(::getpid(), SIGRTMIN + 5, v);
        for (; i < 1000000; ++i) s.safepoint();
        std::exit(0);
      },
      ::testing::ExitedWithCode(kExitCheckpointed), "");
  auto files = Files(Run());
  ASSERT_EQ(files.size(), 1u);
  auto r = lib::DecodeRegistration(files[0], Read(fs::path(Run()) / files[0]));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->exited);
  EXPECT_EQ(fs::path(r->last_image).filename(), "t.000001.ckpt");
  EXPECT_EQ(r->generation, 1u);
}

// A child forked by the program that ends (std::exit, or its copy of the
// session destroyed) must not remove its parent's registration.
TEST_F(SessionFilesTest, AForkedChildLeavesItsParentsRegistration) {
  Session s(Opts());
  std::string reg = Run() + "/" + std::to_string(::getpid()) + ".json";
  ASSERT_TRUE(fs::exists(reg));
  pid_t c = ::fork();
  if (c == 0) std::exit(0);
  int status = 0;
  ::waitpid(c, &status, 0);
  EXPECT_TRUE(fs::exists(reg)) << "std::exit in a child removed it";
  c = ::fork();
  if (c == 0) {
    s.~Session();
    ::_exit(0);
  }
  ::waitpid(c, &status, 0);
  EXPECT_TRUE(fs::exists(reg)) << "a child's copy of the session removed it";
}

}  // namespace
}  // namespace ckpt
