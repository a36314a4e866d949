// Images past the page cache (src/platform/posix_uncached.cc): a program's
// image written with BypassPageCache is byte for byte what was appended, in
// any cut of appends, and leaves the page cache (nearly) empty where the file
// system does direct I/O; the reader returns the same bytes cold or warm, at
// any offset and size, and a cold large read does not fill the page cache.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "platform/env.h"

namespace ckpt {
namespace {

using platform::Env;

std::string Pattern(std::size_t n, std::uint64_t seed) {
  std::string s(n, '\0');
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// The share of the file's pages in the page cache (mincore over a mapping).
double Cached(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  ::fstat(fd, &st);
  std::size_t len = static_cast<std::size_t>(st.st_size);
  void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return -1;
  long page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> v((len + page - 1) / page);
  ::mincore(m, len, v.data());
  ::munmap(m, len);
  std::size_t in = 0;
  for (unsigned char c : v) in += c & 1;
  return v.empty() ? 0 : static_cast<double>(in) / v.size();
}

void Evict(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

bool DirectIoWorks(const std::string& dir) {
  std::string p = dir + "/probe";
  int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  void* buf = nullptr;
  bool ok = ::posix_memalign(&buf, 4096, 4096) == 0 && ::write(fd, buf, 4096) == 4096;
  std::free(buf);
  ::close(fd);
  ::unlink(p.c_str());
  return ok;
}

class UncachedIoTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(GetParam()) + "/ckpt-uncached-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  // Appends `data` in the given cut (cycled) to a new image file and commits it.
  std::string WriteCut(const std::string& data, const std::vector<std::size_t>& cut) {
    auto t = Env::Default()->NewTempFile(dir_, "img", 0600);
    EXPECT_TRUE(t.ok()) << t.status().message();
    (*t)->BypassPageCache();
    std::size_t at = 0;
    for (std::size_t i = 0; at < data.size(); ++i) {
      std::size_t n = std::min(cut[i % cut.size()], data.size() - at);
      EXPECT_TRUE((*t)->Append(data.data() + at, n).ok());
      at += n;
    }
    EXPECT_EQ((*t)->Position(), data.size());
    Status st = (*t)->Sync();
    EXPECT_TRUE(st.ok()) << st.message();
    std::string path = dir_ + "/img";
    auto c = (*t)->Commit(path, true);
    EXPECT_TRUE(c.ok() && *c);
    return path;
  }

  std::string dir_;
};

TEST_P(UncachedIoTest, WritesEveryByteInAnyCutOfAppends) {
  const std::string data = Pattern((std::size_t{37} << 20) + 4321, 1);
  const std::vector<std::vector<std::size_t>> cuts = {
      {data.size()}, {1, 4095, 4097, (std::size_t{3} << 20) + 7}, {std::size_t{17} << 20, 123}, {65536}};
  for (const auto& cut : cuts) {
    std::string path = WriteCut(data, cut);
    auto src = Env::Default()->NewRandomAccessFile(path);
    ASSERT_TRUE(src.ok());
    std::string back(data.size(), '\0');
    ASSERT_TRUE((*src)->ReadAt(0, back.size(), back.data()).ok());
    ASSERT_TRUE(back == data) << "cut starting " << cut[0];
  }
}

TEST_P(UncachedIoTest, SmallFilesAndAppendsAfterSync) {
  // Below one direct block nothing goes direct; a file synced (its tail
  // written through the page cache) takes further appends as ordinary ones.
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{9000}}) {
    std::string data = Pattern(n, n + 7);
    std::string path = WriteCut(data, {1000});
    auto src = Env::Default()->NewRandomAccessFile(path);
    ASSERT_TRUE(src.ok());
    std::string back(n, '\0');
    ASSERT_TRUE((*src)->ReadAt(0, n, back.data()).ok());
    EXPECT_TRUE(back == data) << n;
  }
  auto t = Env::Default()->NewTempFile(dir_, "more", 0600);
  ASSERT_TRUE(t.ok());
  (*t)->BypassPageCache();
  std::string a = Pattern((std::size_t{9} << 20) + 5, 3), b = Pattern(777, 4);
  ASSERT_TRUE((*t)->Append(a.data(), a.size()).ok());
  ASSERT_TRUE((*t)->Sync().ok());
  ASSERT_TRUE((*t)->Append(b.data(), b.size()).ok());
  ASSERT_TRUE((*t)->Commit(dir_ + "/more", true).ok());
  auto src = Env::Default()->NewRandomAccessFile(dir_ + "/more");
  ASSERT_TRUE(src.ok());
  ASSERT_EQ((*src)->Size(), a.size() + b.size());
  std::string back(a.size() + b.size(), '\0');
  ASSERT_TRUE((*src)->ReadAt(0, back.size(), back.data()).ok());
  EXPECT_TRUE(back == a + b);
}

TEST_P(UncachedIoTest, LargeImageBypassesThePageCache) {
  if (!DirectIoWorks(dir_) || std::string(GetParam()) == "/dev/shm")
    GTEST_SKIP() << GetParam() << " keeps every file in memory or has no direct I/O";
  std::string path = WriteCut(Pattern(std::size_t{64} << 20, 5), {std::size_t{1} << 20});
  EXPECT_LT(Cached(path), 0.05) << "the direct writes went through the page cache";
}

TEST_P(UncachedIoTest, ReadsTheSameBytesColdOrWarmAtAnyOffset) {
  const std::string data = Pattern((std::size_t{41} << 20) + 999, 9);
  std::string path = WriteCut(data, {data.size()});
  struct Span {
    std::uint64_t off;
    std::size_t n;
  };
  // Large and small reads, unaligned, across window ends, up to the end.
  const std::vector<Span> spans = {{16, 16},
                                   {733, std::size_t{4} << 20},
                                   {(std::size_t{4} << 20) + 733, 16},
                                   {(std::size_t{4} << 20) + 749, (std::size_t{13} << 20) + 1},
                                   {(std::size_t{16} << 20) - 5, 10},
                                   {(std::size_t{33} << 20) + 3, data.size() - (std::size_t{33} << 20) - 3},
                                   {1, std::size_t{1} << 20},
                                   {data.size() - 1, 1}};
  for (bool cold : {true, false}) {
    if (cold) Evict(path);
    auto src = Env::Default()->NewRandomAccessFile(path);
    ASSERT_TRUE(src.ok());
    for (const Span& s : spans) {
      std::string got(s.n, '\0');
      Status st = (*src)->ReadAt(s.off, s.n, got.data());
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_TRUE(got == data.substr(s.off, s.n)) << (cold ? "cold" : "warm") << " read at " << s.off;
    }
    std::string past(8, '\0');
    EXPECT_FALSE((*src)->ReadAt(data.size() - 4, 8, past.data()).ok());
  }
  if (DirectIoWorks(dir_) && std::string(GetParam()) != "/dev/shm") {
    Evict(path);
    auto src = Env::Default()->NewRandomAccessFile(path);
    ASSERT_TRUE(src.ok());
    std::string all(data.size(), '\0');
    ASSERT_TRUE((*src)->ReadAt(0, all.size(), all.data()).ok());
    EXPECT_TRUE(all == data);
    EXPECT_LT(Cached(path), 0.05) << "a cold large read filled the page cache";
  }
}

TEST_P(UncachedIoTest, AChildForkedDuringAReadAheadDoesNotWaitForIt) {
  // The read ahead runs on a thread of the parent; a child that drops the
  // source (or reads on) must neither join that thread nor use its window.
  const std::string data = Pattern(std::size_t{48} << 20, 11);
  std::string path = WriteCut(data, {data.size()});
  Evict(path);
  auto src = Env::Default()->NewRandomAccessFile(path);
  ASSERT_TRUE(src.ok());
  std::string got(std::size_t{2} << 20, '\0');
  ASSERT_TRUE((*src)->ReadAt(100, got.size(), got.data()).ok());  // a window, and the next one ahead
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string more(std::size_t{20} << 20, '\0');
    bool same = (*src)->ReadAt(std::size_t{17} << 20, more.size(), more.data()).ok() &&
                more == data.substr(std::size_t{17} << 20, more.size());
    src->reset();
    ::_exit(same ? 0 : 1);
  }
  int status = 0;
  for (int i = 0; i < 300 && ::waitpid(child, &status, WNOHANG) == 0; ++i) ::usleep(100000);
  if (::waitpid(child, &status, WNOHANG) == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "the child hung";
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child read other bytes";
  ASSERT_TRUE((*src)->ReadAt(std::size_t{30} << 20, got.size(), got.data()).ok());
  EXPECT_TRUE(got == data.substr(std::size_t{30} << 20, got.size()));
}

INSTANTIATE_TEST_SUITE_P(FileSystems, UncachedIoTest, ::testing::Values("/var/tmp", "/dev/shm"),
                         [](const auto& info) {
                           return std::string(info.param) == "/dev/shm" ? "tmpfs" : "disk";
                         });

}  // namespace
}  // namespace ckpt
