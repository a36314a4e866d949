// Post-copy pages over the migration's connection (remote_pages.h).
#include "net/remote_pages.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/inject.h"
#include "engine/lazy.h"
#include "engine/util.h"
#include "net/wire.h"
#include "platform/posix_util.h"
#include "util/bytes.h"

namespace ckpt::net {

namespace {

constexpr std::size_t kPagesHeader = 12;  // pid (i32), address (u64)
// A fault waits at most this long with nothing at all coming from the
// source: then the fill fails (the target's copy ends, the source's runs
// on) rather than waiting forever on a source that is stuck.
constexpr auto kSilentSource = std::chrono::seconds(120);
constexpr std::uint64_t kPage = engine::kPageSize;

using Key = std::pair<std::int32_t, std::uint64_t>;  // (pid, address)

Status WriteAll(int fd, const char* p, std::size_t n, std::uint64_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return platform::PosixError("pwrite", "the post-copy page file", errno);
    p += w;
    n -= static_cast<std::size_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
  return Status::Ok();
}

}  // namespace

// ---- the target's side ------------------------------------------------------

struct SourcePages::State {
  std::unique_ptr<Stream> stream;
  int file = -1;
  std::string file_path;
  std::mutex mu;
  std::condition_variable cv;
  std::mutex write_mu;  // requests come from the filler, the stop from the restore
  bool released = false, enabled = false, ended = false, stop_sent = false;
  Status failure;
  std::map<Key, std::pair<std::uint64_t, std::uint32_t>> arrived;  // -> (offset in file, bytes)
  std::set<Key> asked;
  std::uint64_t file_end = 0, pages = 0, bytes = 0, requests = 0;
  std::chrono::steady_clock::time_point last_heard;  // a frame came (or the link was handed over)
  std::thread reader;

  ~State() {
    if (file >= 0) ::close(file);
  }
  Status Send(FrameType t, const nlohmann::json& j) {
    std::lock_guard<std::mutex> l(write_mu);
    return SendJson(stream.get(), t, j);
  }
  void Fail(const Status& st) {
    std::lock_guard<std::mutex> l(mu);
    if (failure.ok()) failure = st;
    cv.notify_all();
  }
  Status Take(const Frame& f) {
    if (f.type == FrameType::kPagesEnd) {
      std::lock_guard<std::mutex> l(mu);
      ended = true;
      cv.notify_all();
      return Status::Ok();
    }
    if (f.type == FrameType::kError) {
      auto j = ParseJson(f);
      return FailedPrecondition("the source gave up: " +
                                (j.ok() ? j->value("message", std::string()) : std::string("?")));
    }
    if (f.type != FrameType::kPages || f.payload.size() <= kPagesHeader ||
        (f.payload.size() - kPagesHeader) % kPage != 0) {
      return Corruption("unexpected " + FrameTypeName(f.type) + " frame from the source during post-copy");
    }
    const auto* p = reinterpret_cast<const unsigned char*>(f.payload.data());
    Key k{static_cast<std::int32_t>(DecodeU32(p)), DecodeU64(p + 4)};
    auto len = static_cast<std::uint32_t>(f.payload.size() - kPagesHeader);
    std::uint64_t off;
    {
      std::lock_guard<std::mutex> l(mu);
      if (arrived.count(k) != 0) return Status::Ok();  // sent twice (asked for while on its way)
      off = file_end;
      file_end += len;
    }
    RETURN_IF_ERROR(WriteAll(file, f.payload.data() + kPagesHeader, len, off));
    std::lock_guard<std::mutex> l(mu);
    last_heard = std::chrono::steady_clock::now();
    arrived[k] = {off, len};
    pages += len / kPage;
    bytes += len;
    cv.notify_all();
    return Status::Ok();
  }
  void ReadLoop() {
    Frame f;
    while (true) {
      Status st = RecvFrame(stream.get(), -1, &f);
      if (st.ok()) st = Take(f);
      if (!st.ok()) return Fail(st.WithContext("post-copy pages from the source"));
      std::lock_guard<std::mutex> l(mu);
      if (ended) return;
    }
  }
};

Result<std::unique_ptr<SourcePages>> SourcePages::Open(int read_fd, int write_fd,
                                                       const std::string& spool_file, std::string describe) {
  std::unique_ptr<SourcePages> p(new SourcePages());
  p->s_ = std::make_shared<State>();
  p->describe_ = std::move(describe);
  p->s_->stream = NewFdStream(read_fd, write_fd, p->describe_, false);
  p->s_->file_path = spool_file;
  p->s_->file = ::open(spool_file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (p->s_->file < 0) return platform::PosixError("open", spool_file, errno);
  return p;
}

SourcePages::~SourcePages() {
  if (!s_->reader.joinable()) return;
  std::unique_lock<std::mutex> l(s_->mu);
  // A reader still waiting on the link keeps the state (shared) alive.
  if (s_->ended || !s_->failure.ok()) {
    l.unlock();
    s_->reader.join();
  } else {
    s_->reader.detach();
  }
}

void SourcePages::Released() {
  std::lock_guard<std::mutex> l(s_->mu);
  s_->released = true;
}

void SourcePages::Enable() {
  std::lock_guard<std::mutex> l(s_->mu);
  if (s_->enabled) return;
  s_->enabled = true;
  s_->last_heard = std::chrono::steady_clock::now();
  std::shared_ptr<State> st = s_;
  s_->reader = std::thread([st] { st->ReadLoop(); });
  s_->cv.notify_all();
}

void SourcePages::Abandon(const Status& why) {
  s_->Fail(why);
}

Status SourcePages::Read(std::int32_t pid, std::uint64_t addr, std::size_t size, void* dst) {
  Key k{pid, addr};
  std::unique_lock<std::mutex> l(s_->mu);
  if (!s_->released) {
    return FailedPrecondition("pages at " + std::to_string(addr) + " of process " + std::to_string(pid) +
                              " were needed from " + describe_ + " before the restored process ran");
  }
  bool ask = s_->asked.insert(k).second && s_->arrived.count(k) == 0;
  while (true) {
    if (!s_->failure.ok()) return s_->failure;
    auto it = s_->arrived.find(k);
    if (it != s_->arrived.end()) {
      if (it->second.second != size)
        return Corruption(describe_ + " sent " + std::to_string(it->second.second) + " bytes at " +
                          std::to_string(addr) + " where " + std::to_string(size) + " were expected");
      std::uint64_t off = it->second.first;
      l.unlock();
      return platform::PreadFull(s_->file, off, size, dst, s_->file_path);
    }
    if (s_->ended)
      return Corruption(describe_ + " ended post-copy without the pages at " + std::to_string(addr) +
                        " of process " + std::to_string(pid));
    if (ask && s_->enabled) {
      ask = false;
      ++s_->requests;
      l.unlock();
      Status st = s_->Send(FrameType::kPageRequest, {{"pid", pid}, {"addr", addr}, {"pages", size / kPage}});
      l.lock();
      if (!st.ok() && s_->failure.ok()) s_->failure = st.WithContext("asking " + describe_ + " for pages");
      continue;
    }
    if (s_->enabled && std::chrono::steady_clock::now() - s_->last_heard > kSilentSource) {
      s_->failure =
          Timeout(describe_ + " sent no pages for " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kSilentSource).count()) +
                  " s while the restored process waited for one");
      continue;
    }
    s_->cv.wait_for(l, std::chrono::seconds(1));
  }
}

Status SourcePages::AllIn() {
  std::unique_lock<std::mutex> l(s_->mu);
  if (!s_->enabled) return FailedPrecondition("the connection to " + describe_ + " was never handed over");
  if (!s_->ended && s_->failure.ok() && !s_->stop_sent) {
    s_->stop_sent = true;
    l.unlock();
    Status st = s_->Send(FrameType::kPageRequest, {{"stop", true}});
    l.lock();
    if (!st.ok() && s_->failure.ok()) s_->failure = st.WithContext("telling " + describe_ + " to stop");
  }
  s_->cv.wait(l, [&] { return s_->ended || !s_->failure.ok(); });
  if (!s_->failure.ok()) {
    return s_->failure.WithContext("every page is here, but " + describe_ +
                                   " did not confirm the end of post-copy (it may run its copy on)");
  }
  return Status::Ok();
}

nlohmann::json SourcePages::Stats() const {
  std::lock_guard<std::mutex> l(s_->mu);
  return {{"pages", s_->pages}, {"bytes", s_->bytes}, {"requests", s_->requests}};
}

// ---- the source's side ------------------------------------------------------

namespace {

struct Piece {
  std::int32_t pid;
  std::uint64_t addr, pages;
};

// What the source sends, in order: each member's runs cut as the target cuts them.
std::vector<Piece> SendOrder(const std::vector<engine::DumpStats::RemoteRun>& runs) {
  std::map<std::int32_t, std::vector<engine::PageRun>> by_pid;
  for (const auto& r : runs) by_pid[r.pid].push_back({r.addr, r.pages});
  std::vector<Piece> out;
  for (const auto& [pid, rr] : by_pid) {
    for (const engine::PageRun& f : engine::RemoteFrames(rr)) out.push_back({pid, f.addr, f.pages});
  }
  return out;
}

// The source's serving loop: its state between frames.
struct Server {
  Stream* s = nullptr;
  int rfd = -1;
  std::map<Key, std::uint64_t> held;  // frame -> pages
  std::deque<Key> asked;
  bool stop = false, filled = false;
  nlohmann::json filled_json;
  ServeReport* rep = nullptr;

  // One frame from the target (a request, FILLED, or its ERROR).
  Status Take(int timeout_ms) {
    ASSIGN_OR_RETURN(Frame f, RecvFrame(s, timeout_ms));
    if (f.type == FrameType::kFilled) {
      ASSIGN_OR_RETURN(filled_json, ParseJson(f));
      filled = true;
      return Status::Ok();
    }
    if (f.type == FrameType::kError) {
      auto j = ParseJson(f);
      return FailedPrecondition((j.ok() ? j->value("message", std::string()) : std::string("?")) + " (on " +
                                (j.ok() ? j->value("host", std::string("the target")) : "the target") + ")");
    }
    if (f.type != FrameType::kPageRequest)
      return Corruption("unexpected " + FrameTypeName(f.type) + " frame from the target during post-copy");
    ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(f));
    if (j.value("stop", false)) {
      stop = true;
      return Status::Ok();
    }
    Key k{j.value("pid", 0), j.value("addr", std::uint64_t{0})};
    auto it = held.find(k);
    if (it == held.end() || it->second != j.value("pages", std::uint64_t{0}))
      return Corruption("the target asked for pages the image did not list as remote");
    asked.push_back(k);
    ++rep->requests;
    return Status::Ok();
  }
  // Takes every frame waiting (none waits for one to come).
  Status Poll() {
    while (true) {
      struct pollfd p = {rfd, POLLIN, 0};
      int n = ::poll(&p, 1, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::Ok();
      RETURN_IF_ERROR(Take(-1));
    }
  }
  Status Send(const Piece& p, std::string* buf) {
    std::size_t len = p.pages * kPage;
    buf->resize(kPagesHeader + len);
    auto* h = reinterpret_cast<unsigned char*>(buf->data());
    EncodeU32(h, static_cast<std::uint32_t>(p.pid));
    EncodeU64(h + 4, p.addr);
    RETURN_IF_ERROR(engine::ReadMemory(p.pid, p.addr, buf->data() + kPagesHeader, len));
    RETURN_IF_ERROR(SendFrame(s, FrameType::kPages, *buf));
    rep->pages += p.pages;
    rep->bytes += len;
    return Status::Ok();
  }
};

}  // namespace

Status ServePages(Stream* s, const std::vector<engine::DumpStats::RemoteRun>& runs, int filled_timeout_ms,
                  const std::function<void(std::uint64_t, std::uint64_t)>& progress, ServeReport* report) {
  std::int64_t t0 = engine::NowNs();
  Server sv;
  sv.s = s;
  sv.rep = report;
  int wfd = -1;
  if (!s->Fds(&sv.rfd, &wfd)) return NotSupported("post-copy needs a connection over descriptors (ssh)");
  std::vector<Piece> order = SendOrder(runs);
  std::uint64_t total = 0;
  for (const Piece& p : order) {
    sv.held[{p.pid, p.addr}] = p.pages;
    total += p.pages * kPage;
  }
  std::set<Key> sent;
  std::string buf;
  std::size_t next = 0;
  while (!sv.stop) {
    RETURN_IF_ERROR(sv.Poll());
    Piece p{};
    if (!sv.asked.empty()) {
      Key k = sv.asked.front();
      sv.asked.pop_front();
      if (sent.count(k) != 0) continue;  // on its way already
      p = {k.first, k.second, sv.held[k]};
    } else {
      while (next < order.size() && sent.count({order[next].pid, order[next].addr}) != 0) ++next;
      if (next == order.size()) break;
      p = order[next++];
    }
    RETURN_IF_ERROR(sv.Send(p, &buf));
    sent.insert({p.pid, p.addr});
    if (progress) progress(report->bytes, total);
  }
  RETURN_IF_ERROR(SendJson(s, FrameType::kPagesEnd, {{"pages", report->pages}, {"bytes", report->bytes}}));
  report->all_sent = true;
  // Requests still on their way are for pages sent already: passed over.
  while (!sv.filled) RETURN_IF_ERROR(sv.Take(filled_timeout_ms));
  report->filled = sv.filled_json;
  report->ns = engine::NowNs() - t0;
  return Status::Ok();
}

}  // namespace ckpt::net
