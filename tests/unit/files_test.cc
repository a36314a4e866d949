// Files ckpt creates and reads on behalf of the user (docs/limitations.md,
// "Files and the runtime directory"): new files are never an existing file or
// a link, commits never replace another writer's image, the runtime
// directory and registration files are this user's only.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "platform/env.h"

namespace ckpt {
namespace {

using platform::Env;

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ckpt-files-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string Path(const std::string& n) const { return dir_ + "/" + n; }
  static std::string Read(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static void Write(const std::string& p, const std::string& data) {
    std::ofstream f(p, std::ios::binary);
    f << data;
  }
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    auto l = Env::Default()->ListDir(dir_);
    if (l.ok())
      for (const auto& e : *l) out.push_back(e.name);
    std::sort(out.begin(), out.end());
    return out;
  }
  static unsigned Mode(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0xffffffffu;
  }
  std::string dir_;
};

TEST_F(FilesTest, TempFileIsNewPrivateAndCommitsWithoutReplacing) {
  Env* env = Env::Default();
  Write(Path("other.000001.ckpt"), "another writer's image");
  auto f = env->NewTempFile(dir_, "other.000001.ckpt");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_TRUE((*f)->Append("mine", 4).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  auto c = (*f)->Commit(Path("other.000001.ckpt"), /*replace=*/false);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(*c) << "an existing image was replaced";
  EXPECT_EQ(Read(Path("other.000001.ckpt")), "another writer's image");
  c = (*f)->Commit(Path("other.000002.ckpt"), /*replace=*/false);
  ASSERT_TRUE(c.ok() && *c) << c.status().message();
  EXPECT_EQ(Read(Path("other.000002.ckpt")), "mine");
  EXPECT_EQ(Mode(Path("other.000002.ckpt")), 0600u);
  f->reset();
  EXPECT_EQ(Names(), (std::vector<std::string>{"other.000001.ckpt", "other.000002.ckpt"}));
}

TEST_F(FilesTest, TempFileModeAndReplaceAndCleanup) {
  Env* env = Env::Default();
  Write(Path("a.ckpt"), "old");
  {
    auto f = env->NewTempFile(dir_, "a.ckpt", 0640);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("new", 3).ok());
    auto c = (*f)->Commit(Path("a.ckpt"), /*replace=*/true);
    ASSERT_TRUE(c.ok() && *c) << c.status().message();
  }
  EXPECT_EQ(Read(Path("a.ckpt")), "new");
  EXPECT_EQ(Mode(Path("a.ckpt")), 0640u);
  {
    auto f = env->NewTempFile(dir_, "b.ckpt");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("abandoned", 9).ok());
  }  // never committed: nothing stays
  EXPECT_EQ(Names(), std::vector<std::string>{"a.ckpt"});
}

// For the engine's fixed image name: the previous image is swapped out in
// one step and left for the caller to remove.
TEST_F(FilesTest, CommitExchangeLeavesThePreviousFileForTheCaller) {
  Env* env = Env::Default();
  {
    auto f = env->NewTempFile(dir_, "process.ckpt");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("first", 5).ok());
    auto c = (*f)->CommitExchange(Path("process.ckpt"));
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_FALSE(*c);  // nothing to exchange with
  }
  auto f = env->NewTempFile(dir_, "process.ckpt");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("second", 6).ok());
  auto c = (*f)->CommitExchange(Path("process.ckpt"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(Read(Path("process.ckpt")), "second");
  ASSERT_TRUE(*c) << "renameat2(RENAME_EXCHANGE) is expected to work on the test machine's /tmp";
  std::string old = (*f)->TempPath();
  EXPECT_EQ(Read(old), "first");
  f->reset();  // the old image stays until the caller removes it
  EXPECT_EQ(Names().size(), 2u);
  EXPECT_TRUE(env->RemoveFile(old).ok());
  EXPECT_EQ(Names(), std::vector<std::string>{"process.ckpt"});
}

TEST_F(FilesTest, StaleTempFilesGoUnlessAWriterHoldsThem) {
  Env* env = Env::Default();
  Write(Path("heat.000003.ckpt.0123456789abcdef.tmp"), "left by a killed writer");
  Write(Path("heat.000004.ckpt.fedcba9876543210.tmp"), "being written");
  Write(Path("heat.000004.ckpt.tmp"), "not one of ours");
  Write(Path("life.000001.ckpt.0123456789abcdef.tmp"), "another program's");
  int held = ::open(Path("heat.000004.ckpt.fedcba9876543210.tmp").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  env->RemoveStaleTempFiles(dir_, "heat.");
  ::close(held);
  EXPECT_EQ(Names(),
            (std::vector<std::string>{"heat.000004.ckpt.fedcba9876543210.tmp", "heat.000004.ckpt.tmp",
                                      "life.000001.ckpt.0123456789abcdef.tmp"}));
}

TEST_F(FilesTest, ParseFileMode) {
  EXPECT_EQ(*platform::ParseFileMode("0600"), 0600u);
  EXPECT_EQ(*platform::ParseFileMode("644"), 0644u);
  EXPECT_FALSE(platform::ParseFileMode("0400").ok());  // the owner could not write
  EXPECT_FALSE(platform::ParseFileMode("4755").ok());
  EXPECT_FALSE(platform::ParseFileMode("0689").ok());
  EXPECT_FALSE(platform::ParseFileMode("").ok());
}

// A runtime directory chosen by $CKPT_RUNTIME_DIR.
class RuntimeDirTest : public FilesTest {
 protected:
  void Use(const std::string& d) { ::setenv("CKPT_RUNTIME_DIR", d.c_str(), 1); }
  void TearDown() override {
    ::unsetenv("CKPT_RUNTIME_DIR");
    FilesTest::TearDown();
  }
};

TEST_F(RuntimeDirTest, CreatedPrivate) {
  std::string rt = Path("sub/rt");
  Use(rt);
  Env* env = Env::Default();
  ASSERT_EQ(env->RuntimeDir(), rt);
  EXPECT_EQ(env->SecureRuntimeDir(rt, false).code(), Code::kNotFound);
  ASSERT_TRUE(env->SecureRuntimeDir(rt, true).ok());
  EXPECT_EQ(Mode(rt), 0700u);
}

TEST_F(RuntimeDirTest, RefusesALinkAWritableDirAndAnotherUsersDir) {
  Env* env = Env::Default();
  ASSERT_EQ(::mkdir(Path("real").c_str(), 0700), 0);
  ASSERT_EQ(::symlink(Path("real").c_str(), Path("link").c_str()), 0);
  Use(Path("link"));
  Status st = env->SecureRuntimeDir(Path("link"), true);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("symbolic link"), std::string::npos) << st.message();

  ASSERT_EQ(::mkdir(Path("open").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(Path("open").c_str(), 0777), 0);
  Use(Path("open"));
  st = env->SecureRuntimeDir(Path("open"), true);
  EXPECT_NE(st.message().find("writable by group or others (mode 0777)"), std::string::npos) << st.message();

  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make another user's directory";
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Path("theirs2").c_str(), 0700), 0);
  ASSERT_EQ(::chown(Path("theirs2").c_str(), 65534, 65534), 0);
  Use(Path("theirs2"));
  st = env->SecureRuntimeDir(Path("theirs2"), true);
  EXPECT_NE(st.message().find("is owned by uid 65534, not by this user"), std::string::npos) << st.message();
}

TEST_F(RuntimeDirTest, ReadPrivateFileRefusesLinksForeignAndSpecialFiles) {
  Env* env = Env::Default();
  Write(Path("victim"), "secret");
  Write(Path("ok.json"), "{}");
  ASSERT_EQ(::chmod(Path("ok.json").c_str(), 0600), 0);
  ASSERT_EQ(::symlink(Path("victim").c_str(), Path("link.json").c_str()), 0);
  ASSERT_EQ(::mkfifo(Path("fifo.json").c_str(), 0600), 0);
  Write(Path("open.json"), "{}");
  ASSERT_EQ(::chmod(Path("open.json").c_str(), 0666), 0);
  EXPECT_EQ(*env->ReadPrivateFile(Path("ok.json"), 100), "{}");
  auto r = env->ReadPrivateFile(Path("link.json"), 100);
  EXPECT_NE(r.status().message().find("symbolic link"), std::string::npos) << r.status().message();
  r = env->ReadPrivateFile(Path("fifo.json"), 100);  // must not block
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos) << r.status().message();
  r = env->ReadPrivateFile(Path("open.json"), 100);
  EXPECT_NE(r.status().message().find("writable by group or others"), std::string::npos);
  EXPECT_FALSE(env->ReadPrivateFile(Path("ok.json"), 1).ok());
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make another user's file";
  ASSERT_EQ(::chown(Path("ok.json").c_str(), 65534, 65534), 0);
  r = env->ReadPrivateFile(Path("ok.json"), 100);
  EXPECT_NE(r.status().message().find("owned by uid 65534"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace ckpt
