#include "engine/lazy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "engine/inject.h"
#include "engine/lazy_plan.h"
#include "engine/pagemap.h"
#include "engine/proc.h"
#include "engine/util.h"
#include "image/checksum.h"
#include "platform/posix_util.h"
#include "util/bytes.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr std::uint64_t kPage = kPageSize;
constexpr std::uint64_t kFeatures =
    UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;

// One address space the filler serves: a member, or a process one forked.
struct Space {
  int uffd = -1;
  std::vector<Extent> ext;  // sorted by address
  std::unordered_map<std::uint32_t, std::vector<std::size_t>> by_frame;
  std::uint64_t left = 0;
  std::size_t cursor = 0;  // pushing: the first extent that may have pages left
  bool dead = false;       // its process is gone
  void Index() {
    std::sort(ext.begin(), ext.end(), [](const Extent& a, const Extent& b) { return a.addr < b.addr; });
    by_frame.clear();
    for (std::size_t i = 0; i < ext.size(); ++i) by_frame[ext[i].frame].push_back(i);
    cursor = 0;
  }
  Extent* Find(std::uint64_t addr) {
    auto it = std::upper_bound(ext.begin(), ext.end(), addr,
                               [](std::uint64_t a, const Extent& e) { return a < e.addr; });
    if (it == ext.begin()) return nullptr;
    --it;
    return addr < it->end() ? &*it : nullptr;
  }
  // Pages in [lo, hi) are no longer to be filled (dropped by the process).
  void Drop(std::uint64_t lo, std::uint64_t hi) {
    for (auto& e : ext) {
      if (e.end() <= lo || e.addr >= hi || e.left == 0) continue;
      std::uint64_t a = std::max(lo, e.addr), b = std::min(hi, e.end());
      for (std::uint64_t p = (a - e.addr) / kPage; p < (b - e.addr) / kPage; ++p) {
        if (!e.pending[p]) continue;
        e.pending[p] = false;
        --e.left;
        --left;
      }
    }
  }
  // mremap: pages pending in [from, from+len) now live at `to`.
  void Move(std::uint64_t from, std::uint64_t to, std::uint64_t len) {
    std::vector<Extent> out;
    auto piece = [&](const Extent& e, std::uint64_t a, std::uint64_t b, bool moved) {
      if (a >= b) return;
      Extent n;
      std::uint32_t p0 = static_cast<std::uint32_t>((a - e.addr) / kPage);
      n.pages = static_cast<std::uint32_t>((b - a) / kPage);
      n.addr = moved ? a - from + to : a;
      n.frame = e.frame;
      n.first = e.first + p0;
      n.pending.assign(e.pending.begin() + p0, e.pending.begin() + p0 + n.pages);
      n.left = static_cast<std::uint32_t>(std::count(n.pending.begin(), n.pending.end(), true));
      out.push_back(std::move(n));
    };
    for (const auto& e : ext) {
      if (e.end() <= from || e.addr >= from + len) {
        out.push_back(e);
        continue;
      }
      piece(e, e.addr, std::max(e.addr, from), false);
      piece(e, std::max(e.addr, from), std::min(e.end(), from + len), true);
      piece(e, std::min(e.end(), from + len), e.end(), false);
    }
    ext = std::move(out);
    Index();
  }
};

}  // namespace

struct LazyFill::State {
  // Plan(): work for the planner thread, and what it made, by (member, link).
  std::mutex plan_mu;
  std::condition_variable plan_cv;
  struct Task {
    std::int32_t pid;
    int link;
    const image::ImageReader* r;
    std::string prefix;
    std::vector<PageRun> wanted, eligible;
  };
  std::deque<Task> tasks;
  std::map<std::pair<std::int32_t, int>, LinkPlan> plans;
  std::vector<std::unique_ptr<image::RandomAccessSource>> remote_members;  // PlanRemote's frame sources
  std::set<std::pair<std::int32_t, int>> queued;
  bool plan_stop = false;
  std::thread planner;
  std::vector<PageFrame> frames;
  std::map<std::int32_t, std::vector<Extent>> planned;  // per member, until armed
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Space>> spaces;
  std::atomic<bool> armed{false};  // a space was made (empty() reads it without `mu`)
  std::function<void()> on_fork;
  std::function<void(int)> on_uffd;
  std::deque<std::pair<Space*, std::uint64_t>> retry;  // faults to serve again (EAGAIN)
  bool pushing = false, stop = false, done = false;
  Status failure;
  LazyStats stats;
  std::uint64_t total = 0, filled = 0;
  int wake = -1;
  std::thread filler;
  // The frame in `buf` (checked), or -1.
  std::int64_t loaded = -1;
  std::vector<unsigned char> buf;

  Status Load(std::uint32_t f) {
    if (loaded == f) return Status::Ok();
    const PageFrame& fr = frames[f];
    buf.resize(fr.len);
    loaded = -1;
    RETURN_IF_ERROR(fr.src->ReadAt(fr.off, fr.len, buf.data()));
    if (fr.verify && image::Checksum64(buf.data(), fr.len) != fr.sum)
      return Corruption(fr.src->Name() + ": frame at offset " + std::to_string(fr.off) +
                        " checksum mismatch (data damaged)");
    loaded = f;
    return Status::Ok();
  }
  void Done(Space* sp, Extent& e, std::uint32_t p) {
    if (!e.pending[p]) return;
    e.pending[p] = false;
    --e.left;
    --sp->left;
    ++filled;
  }
  // Copies extent `e`'s pending pages in. False: the process's map is
  // changing (events to read first).
  Result<bool> FillExtent(Space* sp, Extent& e) {
    std::uint32_t p = 0;
    while (p < e.pages && e.left > 0 && !sp->dead) {
      if (!e.pending[p]) {
        ++p;
        continue;
      }
      std::uint32_t q = p;
      while (q < e.pages && e.pending[q]) ++q;
      struct uffdio_copy c {};
      c.dst = e.addr + p * kPage;
      c.src = reinterpret_cast<std::uint64_t>(buf.data() + (e.first + p) * kPage);
      c.len = (q - p) * kPage;
      int rc = ::ioctl(sp->uffd, UFFDIO_COPY, &c);
      std::int64_t copied = c.copy > 0 ? c.copy : 0;
      for (std::uint32_t i = 0; i < copied / kPage; ++i) Done(sp, e, p + i);
      stats.pages += copied / kPage;
      if (rc == 0) {
        p = q;
        continue;
      }
      int err = errno;
      p += static_cast<std::uint32_t>(copied / kPage);
      if (err == EAGAIN && copied > 0) continue;
      if (err == EAGAIN) return false;
      if (err == EEXIST) {
        ++stats.present;  // present already: the process's own (cannot happen for a missing page)
        Done(sp, e, p);
        ++p;
      } else if (err == ESRCH) {
        sp->dead = true;
      } else if (err == ENOENT || err == EFAULT || err == EINVAL) {
        Done(sp, e, p);  // no longer mapped there
        ++p;
      } else {
        return PosixError("UFFDIO_COPY", "a lazily restored page", err);
      }
    }
    return true;
  }
  Result<bool> FillFrame(Space* sp, std::uint32_t f) {
    RETURN_IF_ERROR(Load(f));
    auto it = sp->by_frame.find(f);
    if (it == sp->by_frame.end()) return true;
    for (std::size_t i : it->second) {
      ASSIGN_OR_RETURN(bool ok, FillExtent(sp, sp->ext[i]));
      if (!ok) return false;
    }
    return true;
  }
  // A fault at `addr`: its frame filled, or a zero page where no image
  // holds one. False: to retry once events are read.
  Result<bool> Serve(Space* sp, std::uint64_t addr) {
    addr &= ~(kPage - 1);
    Extent* e = sp->Find(addr);
    if (e != nullptr && e->pending[(addr - e->addr) / kPage]) {
      ++stats.faults;
      return FillFrame(sp, e->frame);
    }
    struct uffdio_zeropage z {};
    z.range.start = addr;
    z.range.len = kPage;
    if (::ioctl(sp->uffd, UFFDIO_ZEROPAGE, &z) == 0) {
      ++stats.zero_faults;
      return true;
    }
    int err = errno;
    if (err == EAGAIN) return false;
    if (err == ESRCH) sp->dead = true;
    // Present already (filled meanwhile) or gone: wake whoever waits.
    struct uffdio_range w {
      addr, kPage
    };
    (void)::ioctl(sp->uffd, UFFDIO_WAKE, &w);
    return true;
  }
  Status Handle(Space* sp, const uffd_msg& m) {
    switch (m.event) {
      case UFFD_EVENT_PAGEFAULT: {
        ASSIGN_OR_RETURN(bool ok, Serve(sp, m.arg.pagefault.address));
        if (!ok) retry.push_back({sp, m.arg.pagefault.address});
        return Status::Ok();
      }
      case UFFD_EVENT_FORK: {
        auto child = std::make_unique<Space>();
        child->uffd = static_cast<int>(m.arg.fork.ufd);
        child->ext = sp->ext;
        child->left = sp->left;
        child->Index();
        total += child->left;
        ++stats.forks;
        if (on_uffd) on_uffd(child->uffd);
        spaces.push_back(std::move(child));
        if (on_fork) on_fork();
        return Status::Ok();
      }
      case UFFD_EVENT_REMAP:
        sp->Move(m.arg.remap.from, m.arg.remap.to, m.arg.remap.len);
        return Status::Ok();
      case UFFD_EVENT_REMOVE:
      case UFFD_EVENT_UNMAP: {
        std::uint64_t before = sp->left;
        sp->Drop(m.arg.remove.start, m.arg.remove.end);
        filled += before - sp->left;
        return Status::Ok();
      }
      default:
        return Status::Ok();
    }
  }
  // Reads every message waiting on `sp`.
  Status Drain(Space* sp) {
    uffd_msg msgs[32];
    while (!sp->dead) {
      ssize_t n = ::read(sp->uffd, msgs, sizeof msgs);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return Status::Ok();
      if (n <= 0) {
        sp->dead = true;
        return Status::Ok();
      }
      // Handle() may add spaces: `sp` stays valid (owned by a unique_ptr).
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); ++i)
        RETURN_IF_ERROR(Handle(sp, msgs[i]));
    }
    return Status::Ok();
  }
  // One frame of the next space with pages left; false if none has.
  Result<bool> PushOne() {
    for (auto& sp : spaces) {
      if (sp->dead || sp->left == 0) continue;
      while (sp->cursor < sp->ext.size() && sp->ext[sp->cursor].left == 0) ++sp->cursor;
      if (sp->cursor == sp->ext.size()) {
        sp->cursor = 0;  // moved or dropped pages: look again from the start
        std::uint64_t pending = 0;
        for (const Extent& e : sp->ext) pending += e.left;
        if (pending == 0) sp->left = 0;  // never spin on a count no extent holds
        continue;
      }
      ASSIGN_OR_RETURN(bool ok, FillFrame(sp.get(), sp->ext[sp->cursor].frame));
      (void)ok;  // not ok: events first, the next round goes on
      return true;
    }
    return false;
  }
  bool AllIn() const {
    return std::all_of(spaces.begin(), spaces.end(),
                       [](const auto& sp) { return sp->dead || sp->left == 0; });
  }
  Status Step() {
    std::vector<struct pollfd> fds = {{wake, POLLIN, 0}};
    std::vector<Space*> polled;
    bool work = false;
    {
      std::lock_guard<std::mutex> l(mu);
      for (auto& sp : spaces) {
        if (sp->dead) continue;
        fds.push_back({sp->uffd, POLLIN, 0});
        polled.push_back(sp.get());
      }
      work = (pushing && !AllIn()) || !retry.empty();
    }
    int n = ::poll(fds.data(), fds.size(), work ? 0 : 100);
    if (n < 0 && errno != EINTR) return PosixError("poll", "userfaultfds", errno);
    std::lock_guard<std::mutex> l(mu);
    if ((fds[0].revents & POLLIN) != 0) {
      std::uint64_t v;
      (void)!::read(wake, &v, sizeof v);
    }
    for (std::size_t i = 0; i < polled.size(); ++i) {
      if ((fds[i + 1].revents & (POLLERR | POLLHUP)) != 0) polled[i]->dead = true;
      if ((fds[i + 1].revents & POLLIN) != 0) RETURN_IF_ERROR(Drain(polled[i]));
    }
    for (std::size_t k = retry.size(); k > 0; --k) {
      auto [sp, addr] = retry.front();
      retry.pop_front();
      ASSIGN_OR_RETURN(bool ok, Serve(sp, addr));
      if (!ok) retry.push_back({sp, addr});
    }
    if (pushing) {
      ASSIGN_OR_RETURN(bool more, PushOne());
      if (!more && AllIn()) done = true;
    }
    cv.notify_all();
    return Status::Ok();
  }
  // The filler failed: every page still missing is unregistered, which
  // wakes the faults waiting on it (they get zero pages). The restore
  // sees the failure (Failed(), Finish()) and kills the processes instead
  // of letting them run; a fault the restore itself made does not hang it.
  void Unblock() {
    for (auto& sp : spaces) {
      for (const Extent& e : sp->ext) {
        if (e.left == 0 || sp->dead) continue;
        struct uffdio_range r {
          e.addr, e.pages* kPage
        };
        (void)::ioctl(sp->uffd, UFFDIO_UNREGISTER, &r);
      }
    }
  }
  void Loop() {
    while (true) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (stop || done) return;
      }
      Status st = Step();
      if (!st.ok()) {
        std::lock_guard<std::mutex> l(mu);
        failure = st;
        Unblock();
        cv.notify_all();
        return;
      }
    }
  }
};

LazyFill::LazyFill() : s_(new State) {}

LazyFill::~LazyFill() {
  {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->stop = true;
  }
  if (s_->wake >= 0) {
    std::uint64_t one = 1;
    (void)!::write(s_->wake, &one, sizeof one);
  }
  if (s_->filler.joinable()) s_->filler.join();
  {
    std::lock_guard<std::mutex> l(s_->plan_mu);
    s_->plan_stop = true;
    s_->plan_cv.notify_all();
  }
  if (s_->planner.joinable()) s_->planner.join();
  for (auto& sp : s_->spaces) ::close(sp->uffd);
  if (s_->wake >= 0) ::close(s_->wake);
}

Status LazyFill::Failed() const {
  std::lock_guard<std::mutex> l(s_->mu);
  return s_->failure;
}

bool LazyFill::empty() const {
  // Not under `mu`: once the processes run, the filler may hold it while it
  // waits for a post-copy source, which waits for the restore to go on
  // (on_running hands it the connection). `planned` is the restoring
  // thread's alone; a space exists once one was armed.
  return s_->planned.empty() && !s_->armed.load();
}

void LazyFill::Plan(std::int32_t dumped_pid, int link, const image::ImageReader& r, const std::string& prefix,
                    const std::vector<PageRun>& wanted, const std::vector<Vma>& vmas) {
  std::lock_guard<std::mutex> l(s_->plan_mu);
  s_->tasks.push_back({dumped_pid, link, &r, prefix, wanted, LazyEligibleRuns(vmas)});
  s_->queued.insert({dumped_pid, link});
  s_->plan_cv.notify_all();
  if (s_->planner.joinable()) return;
  s_->planner = std::thread([this] {
    std::unique_lock<std::mutex> pl(s_->plan_mu);
    while (true) {
      s_->plan_cv.wait(pl, [&] { return s_->plan_stop || !s_->tasks.empty(); });
      if (s_->plan_stop) return;
      State::Task t = std::move(s_->tasks.front());
      s_->tasks.pop_front();
      pl.unlock();
      LinkPlan made = MakePlan(*t.r, t.prefix, t.wanted, t.eligible);
      pl.lock();
      s_->plans[{t.pid, t.link}] = std::move(made);
      s_->plan_cv.notify_all();
    }
  });
}

void LazyFill::PlanRemote(std::int32_t dumped_pid, int link, RemotePages* remote,
                          const std::vector<PageRun>& held, const std::vector<PageRun>& wanted,
                          const std::vector<Vma>& vmas) {
  auto src = std::make_unique<RemoteMember>(remote, dumped_pid);
  LinkPlan p = MakeRemotePlan(src.get(), held, wanted, LazyEligibleRuns(vmas));
  std::lock_guard<std::mutex> l(s_->plan_mu);
  s_->remote_members.push_back(std::move(src));
  s_->queued.insert({dumped_pid, link});
  s_->plans[{dumped_pid, link}] = std::move(p);
  s_->plan_cv.notify_all();
}

void LazyFill::OnUffd(std::function<void(int)> f) {
  s_->on_uffd = std::move(f);
}

void LazyFill::OnFork(std::function<void()> f) {
  s_->on_fork = std::move(f);
}

Result<std::vector<PageRun>> LazyFill::Apply(std::int32_t dumped_pid, int link, pid_t pid) {
  LinkPlan p;
  {
    std::unique_lock<std::mutex> pl(s_->plan_mu);
    std::pair<std::int32_t, int> key{dumped_pid, link};
    if (s_->queued.count(key) == 0) return Internal("lazy restore: no plan for an image of the chain");
    s_->plan_cv.wait(pl, [&] { return s_->plans.count(key) != 0; });
    p = std::move(s_->plans[key]);
    s_->plans.erase(key);
  }
  RETURN_IF_ERROR(p.status);
  if (p.frames.empty()) return p.left;
  std::lock_guard<std::mutex> l(s_->mu);  // the filler may serve other members meanwhile
  const auto base = static_cast<std::uint32_t>(s_->frames.size());
  s_->frames.insert(s_->frames.end(), p.frames.begin(), p.frames.end());
  std::vector<Extent>& out = s_->planned[dumped_pid];
  for (auto& e : p.extents) {
    e.frame += base;
    e.pending.assign(e.pages, true);
    out.push_back(std::move(e));
  }
  if (out.empty()) s_->planned.erase(dumped_pid);
  // A private file mapping's changed pages: written now.
  for (const auto& e : p.eager) {
    RETURN_IF_ERROR(s_->Load(base + e.frame));
    RETURN_IF_ERROR(WriteMemory(pid, e.addr, s_->buf.data() + e.first * kPage, e.pages * kPage));
  }
  return p.left;
}

Status LazyFill::Arm(std::int32_t dumped_pid, pid_t pid, Injector* inj, const std::vector<Vma>& vmas) {
  auto it = s_->planned.find(dumped_pid);
  if (it == s_->planned.end() || it->second.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(std::uint64_t made, inj->Call("userfaultfd", SYS_userfaultfd, {O_CLOEXEC | O_NONBLOCK}));
  Result<int> copy = CopyFdOf(pid, static_cast<int>(made));
  RETURN_IF_ERROR(inj->Call("close(userfaultfd)", SYS_close, {made}).status());
  RETURN_IF_ERROR(copy.status());
  const int fd = *copy;
  int e = 0;
  auto sp = std::make_unique<Space>();
  sp->uffd = fd;
  struct uffdio_api api {};
  api.api = UFFD_API;
  api.features = kFeatures;
  if (::ioctl(fd, UFFDIO_API, &api) != 0) {
    e = errno;
    ::close(fd);
    return PosixError("UFFDIO_API", "the restored process's userfaultfd", e);
  }
  sp->ext = std::move(it->second);
  s_->planned.erase(it);
  for (const auto& x : sp->ext) sp->left += x.left;
  sp->Index();
  // A page in two extents would be found in neither (Space::Find).
  for (std::size_t i = 1; i < sp->ext.size(); ++i) {
    if (sp->ext[i].addr < sp->ext[i - 1].end()) {
      ::close(fd);
      return Internal("lazy restore: two images give page " + std::to_string(sp->ext[i].addr) +
                      " of process " + std::to_string(dumped_pid));
    }
  }
  for (const Vma& v : vmas) {
    if (!LazyEligible(v)) continue;
    // Registered only where it has lazy pages: the first extent ending
    // after its start begins before its end.
    auto x = std::upper_bound(sp->ext.begin(), sp->ext.end(), v.start,
                              [](std::uint64_t a, const Extent& ex) { return a < ex.end(); });
    if (x == sp->ext.end() || x->addr >= v.end) continue;
    struct uffdio_register reg {};
    reg.range.start = v.start;
    reg.range.len = v.size();
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (::ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
      e = errno;
      ::close(fd);
      return PosixError("UFFDIO_REGISTER", "mapping " + HexAddr(v.start) + "-" + HexAddr(v.end), e);
    }
  }
  if (s_->on_uffd) s_->on_uffd(fd);
  std::lock_guard<std::mutex> l(s_->mu);
  s_->total += sp->left;
  s_->spaces.push_back(std::move(sp));
  s_->armed = true;
  if (s_->wake < 0) {
    s_->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s_->wake < 0) return PosixError("eventfd", "the lazy filler", errno);
    s_->filler = std::thread([this] { s_->Loop(); });
  } else {
    std::uint64_t one = 1;
    (void)!::write(s_->wake, &one, sizeof one);
  }
  return Status::Ok();
}

Result<LazyStats> LazyFill::Finish(const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  std::int64_t t0 = NowNs();
  std::unique_lock<std::mutex> l(s_->mu);
  if (s_->spaces.empty()) return s_->stats;
  s_->pushing = true;
  std::uint64_t one = 1;
  (void)!::write(s_->wake, &one, sizeof one);
  while (!s_->done && s_->failure.ok()) {
    s_->cv.wait_for(l, std::chrono::milliseconds(100));
    if (progress) progress(std::min(s_->filled, s_->total), s_->total);
  }
  RETURN_IF_ERROR(s_->failure);
  s_->stats.fill_ns = NowNs() - t0;
  return s_->stats;
}

std::string LazyUnavailable() {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    return std::string("userfaultfd: ") + std::strerror(errno) +
           " (faults in the kernel need CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)";
  }
  struct uffdio_api api {};
  api.api = UFFD_API;
  api.features = kFeatures;
  int rc = ::ioctl(fd, UFFDIO_API, &api);
  int e = errno;
  ::close(fd);
  if (rc != 0) return std::string("userfaultfd lacks fork/mremap/munmap events: ") + std::strerror(e);
  return "";
}

}  // namespace ckpt::engine
