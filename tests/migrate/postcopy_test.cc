// Unit tests of post-copy's wire protocol (net/remote_pages.h): a source
// serving pages of this very process (/proc/self/mem) to a SourcePages over
// two pipes, as the ssh channel carries them. Pages come whole and exact in
// whatever order the target asks; a link that ends mid-way is an error,
// with all_sent saying what the source may conclude; a request for pages
// the image did not list is refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "engine/lazy.h"
#include "net/remote_pages.h"
#include "net/wire.h"

namespace ckpt {
namespace {

constexpr std::size_t kPage = 4096;

struct Link {
  int to_target[2] = {-1, -1}, to_source[2] = {-1, -1};
  Link() {
    EXPECT_EQ(::pipe2(to_target, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(to_source, O_CLOEXEC), 0);
  }
  ~Link() {
    for (int fd : {to_target[0], to_target[1], to_source[0], to_source[1]})
      if (fd >= 0) ::close(fd);
  }
};

// Pages with a pattern of their number, page-aligned.
struct Memory {
  std::size_t pages;
  unsigned char* p;
  explicit Memory(std::size_t n) : pages(n) {
    p = static_cast<unsigned char*>(std::aligned_alloc(kPage, n * kPage));
    for (std::size_t i = 0; i < n * kPage; ++i) p[i] = static_cast<unsigned char>((i / kPage) * 7 + i % 251);
  }
  ~Memory() { std::free(p); }
  std::uint64_t addr() const { return reinterpret_cast<std::uint64_t>(p); }
};

std::string TempFile(const char* name) {
  return (std::filesystem::temp_directory_path() / (std::string(name) + std::to_string(::getpid()))).string();
}

TEST(PostCopy, PagesComeExactInAnyOrder) {
  Memory m(600);  // three frames of 256 pages, the last partial
  Link l;
  const std::int32_t pid = ::getpid();
  std::vector<engine::DumpStats::RemoteRun> runs = {{pid, m.addr(), m.pages}};
  auto source = net::NewFdStream(l.to_source[0], l.to_target[1], "the target", false);
  net::ServeReport rep;
  Status served;
  std::string file = TempFile("postcopy-test-");
  auto sp = net::SourcePages::Open(l.to_target[0], l.to_source[1], file, "the source");
  ASSERT_TRUE(sp.ok()) << sp.status().message();
  std::vector<unsigned char> got(256 * kPage);
  // Before the restored process runs, nothing may wait for the source.
  EXPECT_FALSE((*sp)->Read(pid, m.addr(), 256 * kPage, got.data()).ok());
  (*sp)->Released();
  (*sp)->Enable();
  std::thread src([&] { served = net::ServePages(source.get(), runs, 10000, nullptr, &rep); });
  // The last frame first, then the others; each exact.
  auto frames = engine::RemoteFrames({{m.addr(), m.pages}});
  ASSERT_EQ(frames.size(), 3u);
  for (int i : {2, 0, 1}) {
    std::size_t len = frames[i].pages * kPage;
    ASSERT_TRUE((*sp)->Read(pid, frames[i].addr, len, got.data()).ok());
    EXPECT_EQ(std::memcmp(got.data(), reinterpret_cast<void*>(frames[i].addr), len), 0) << "frame " << i;
  }
  ASSERT_TRUE((*sp)->AllIn().ok());
  auto target = net::NewFdStream(l.to_target[0], l.to_source[1], "the source", false);
  ASSERT_TRUE(net::SendJson(target.get(), net::FrameType::kFilled, {{"ok", true}}).ok());
  src.join();
  ASSERT_TRUE(served.ok()) << served.message();
  EXPECT_TRUE(rep.all_sent);
  EXPECT_EQ(rep.filled.value("ok", false), true);
  EXPECT_GE(rep.pages, m.pages);
  nlohmann::json st = (*sp)->Stats();
  EXPECT_EQ(st.value("pages", 0), static_cast<int>(m.pages));
  sp->reset();
  std::filesystem::remove(file);
}

TEST(PostCopy, LinkCutMidWay) {
  Memory m(2048);  // 8 frames
  Link l;
  const std::int32_t pid = ::getpid();
  std::vector<engine::DumpStats::RemoteRun> runs = {{pid, m.addr(), m.pages}};
  auto source = net::NewFdStream(l.to_source[0], l.to_target[1], "the target", false);
  // The target reads one frame and goes away.
  std::thread target([&] {
    auto t = net::NewFdStream(l.to_target[0], l.to_source[1], "the source", false);
    auto f = net::RecvFrame(t.get());
    EXPECT_TRUE(f.ok());
    if (f.ok()) {
      EXPECT_EQ(f->type, net::FrameType::kPages);
    }
    ::close(l.to_target[0]);
    l.to_target[0] = -1;
    ::close(l.to_source[1]);
    l.to_source[1] = -1;
  });
  net::ServeReport rep;
  Status st = net::ServePages(source.get(), runs, 10000, nullptr, &rep);
  target.join();
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(rep.all_sent);  // the target cannot have had every page
}

TEST(PostCopy, RefusesPagesNotListed) {
  Memory m(16);
  Link l;
  const std::int32_t pid = ::getpid();
  auto source = net::NewFdStream(l.to_source[0], l.to_target[1], "the target", false);
  auto target = net::NewFdStream(l.to_target[0], l.to_source[1], "the source", false);
  ASSERT_TRUE(net::SendJson(target.get(), net::FrameType::kPageRequest,
                            {{"pid", pid}, {"addr", m.addr() + kPage}, {"pages", 1}})
                  .ok());
  net::ServeReport rep;
  Status st = net::ServePages(source.get(), {{pid, m.addr(), 8}}, 10000, nullptr, &rep);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("did not list"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace ckpt
