// Encoding and decoding of the process image sections (docs/image-format.md):
// one field list per struct (tagged.h) drives both directions; the checks
// beyond the field lists follow each decoder.
#include "engine/model.h"

#include <algorithm>

#include "engine/model_codec.h"
#include "util/bytes.h"

namespace ckpt::engine {

template <class IO>
void Fields(IO& io, Rlimit& l) {
  io(1, "cur", l.cur);
  io(2, "max", l.max);
}

template <class IO>
void Fields(IO& io, MmLayout& m) {
  io(1, "start_code", m.start_code);
  io(2, "end_code", m.end_code);
  io(3, "start_data", m.start_data);
  io(4, "end_data", m.end_data);
  io(5, "start_brk", m.start_brk);
  io(6, "brk", m.brk);
  io(7, "start_stack", m.start_stack);
  io(8, "arg_start", m.arg_start);
  io(9, "arg_end", m.arg_end);
  io(10, "env_start", m.env_start);
  io(11, "env_end", m.env_end);
}

template <class IO>
void Fields(IO& io, Core& c) {
  io(1, "pid", c.pid);
  io(2, "comm", c.comm);
  io(3, "exe_file", c.exe_file);
  io(4, "cwd", c.cwd);
  io(5, "umask", c.umask);
  io(6, "personality", c.personality);
  io(7, "rlimit", c.rlimits, Max{64});
  io(8, "mm", c.mm);
  io(9, "auxv", c.auxv, Max{512});
  io(10, "kernel_release", c.kernel_release);
  io(11, "host", c.host);
  io(12, "dumped_at_ns", c.dumped_at_ns);
  io(13, "xsave_size", c.xsave_size);
  io(14, "itimers", c.itimers, Max{64});
  io(15, "leader", c.leader);
}

template <class IO>
void Fields(IO& io, ThreadState& t) {
  io(1, "tid", t.tid);
  io(2, "gpregs", t.gpregs);  // exactly kGpRegs when present
  io(3, "xsave", t.xsave);
  io(4, "sigmask", t.sigmask);
  io(5, "rseq_ptr", t.rseq_ptr);
  io(6, "rseq_len", t.rseq_len);
  io(7, "rseq_sig", t.rseq_sig);
  io(8, "clear_tid", t.clear_tid);
  io(9, "altstack_sp", t.altstack_sp);
  io(10, "altstack_size", t.altstack_size);
  io(11, "altstack_flags", t.altstack_flags);
  io(12, "robust_list", t.robust_list);
  io(13, "robust_len", t.robust_len);
  io(14, "comm", t.comm);
  io(15, "pending", t.pending, Max{4096});  // 128-byte siginfo_t each
}

template <class IO>
void Fields(IO& io, Vma& m) {
  io(1, "start", m.start);
  io(2, "end", m.end);
  io(3, "prot", m.prot);
  io(4, "flags", m.flags);
  io(5, "pgoff", m.pgoff);
  io(6, "file", m.file);
  io(7, "kind", m.kind);
  io(8, "name", m.name);
}

template <class IO>
void Fields(IO& io, FileRef& f) {
  io(1, "path", f.path);
  io(2, "size", f.size);
  io(3, "mtime_ns", f.mtime_ns);
  io(4, "mode", f.mode);
  io(5, "ino", f.ino);
  io(6, "dev", f.dev);
  io(7, "build_id", f.build_id);
  io(8, "deleted", f.deleted);
}

template <class IO>
void Fields(IO& io, Fd& f) {
  io(1, "fd", f.fd);
  io(2, "kind", f.kind);
  io(3, "flags", f.flags);
  io(4, "pos", f.pos);
  io(5, "file", f.file);
  io(6, "pipe_ino", f.pipe_ino);
  io(7, "pipe_write_end", f.pipe_write_end);
  io(8, "pipe_internal", f.pipe_internal);
  io(9, "dup_of", f.dup_of);
}

template <class IO>
void Fields(IO& io, SigAction& a) {
  io(1, "handler", a.handler);
  io(2, "flags", a.flags);
  io(3, "restorer", a.restorer);
  io(4, "mask", a.mask);
}

template <class IO>
void Fields(IO& io, Signals& s) {
  io(1, "action", s.actions);  // signals 1..64, all of them when present
  io(2, "pending", s.pending, Max{4096});
}

template <class IO>
void Fields(IO& io, ThreadCreds& t) {
  io(1, "tid", t.tid);
  io(2, "uid", t.uid);
  io(3, "gid", t.gid);
  io(4, "groups", t.groups, Max{65536});
  io(5, "cap_inh", t.cap_inh);
  io(6, "cap_prm", t.cap_prm);
  io(7, "cap_eff", t.cap_eff);
  io(8, "cap_bnd", t.cap_bnd);
  io(9, "cap_amb", t.cap_amb);
  io(10, "securebits", t.securebits);
  io(11, "no_new_privs", t.no_new_privs);
}

template <class IO>
void Fields(IO& io, Creds& c) {
  io(1, "dumpable", c.dumpable);
  io(2, "thread", c.threads, Max{1u << 20});
}

namespace {

// The list sections.
constexpr auto kVmaList = [](auto& io, std::vector<Vma>& v) { io(1, "vma", v, Max{1u << 24}); };
constexpr auto kFileList = [](auto& io, std::vector<FileRef>& v) { io(1, "file", v, Max{1u << 20}); };
constexpr auto kFdList = [](auto& io, std::vector<Fd>& v) { io(1, "fd", v, Max{1u << 20}); };
constexpr auto kRunList = [](auto& io, std::vector<PageRun>& v) { io(1, "run", v, Max{1u << 26}); };

bool SigInfos(const std::vector<std::string>& l) {
  return std::all_of(l.begin(), l.end(), [](const std::string& s) { return s.size() == 128; });
}

}  // namespace

std::string EncodeCore(const Core& c) {
  return EncodeSection(c);
}

static Status DecodeCore(std::string_view in, Core* c) {
  return DecodeSection(in, "core", c);
}

std::string EncodeThread(const ThreadState& t) {
  return EncodeSection(t);
}

static Status DecodeThread(std::string_view in, ThreadState* t) {
  RETURN_IF_ERROR(DecodeSection(in, "thread", t));
  if (!SigInfos(t->pending)) return Malformed("thread");
  return Status::Ok();
}

std::string EncodeVmas(const std::vector<Vma>& v) {
  return EncodeSection(v, kVmaList);
}

static Status DecodeVmas(std::string_view in, std::vector<Vma>* v) {
  RETURN_IF_ERROR(DecodeSection(in, "vmas", v, kVmaList));
  for (std::size_t i = 0; i < v->size(); ++i) {
    const Vma& m = (*v)[i];
    if (m.kind > VmaKind::kSysvShm || m.end <= m.start || (m.start & 4095) != 0 || (m.end & 4095) != 0 ||
        (i > 0 && m.start < (*v)[i - 1].end))
      return Malformed("vmas");
  }
  return Status::Ok();
}

std::string EncodeFiles(const std::vector<FileRef>& f) {
  return EncodeSection(f, kFileList);
}

static Status DecodeFiles(std::string_view in, std::vector<FileRef>* f) {
  return DecodeSection(in, "files", f, kFileList);
}

std::string EncodeFds(const std::vector<Fd>& f) {
  return EncodeSection(f, kFdList);
}

static Status DecodeFds(std::string_view in, std::vector<Fd>* f) {
  RETURN_IF_ERROR(DecodeSection(in, "fds", f, kFdList));
  for (const Fd& x : *f) {
    if (x.kind > FdKind::kUnixExternal || x.fd < 0 || x.dup_of >= x.fd) return Malformed("fds");
  }
  return Status::Ok();
}

std::string EncodeSignals(const Signals& s) {
  return EncodeSection(s);
}

static Status DecodeSignals(std::string_view in, Signals* s) {
  RETURN_IF_ERROR(DecodeSection(in, "signals", s));
  if (!SigInfos(s->pending)) return Malformed("signals");
  return Status::Ok();
}

std::string EncodeCreds(const Creds& c) {
  return EncodeSection(c);
}

static Status DecodeCreds(std::string_view in, Creds* c) {
  RETURN_IF_ERROR(DecodeSection(in, "creds", c));
  c->recorded = true;
  return Status::Ok();
}

std::string EncodePagemap(const std::vector<PageRun>& runs) {
  return EncodeSection(runs, kRunList);
}

static Status DecodePagemap(std::string_view in, std::vector<PageRun>* runs) {
  RETURN_IF_ERROR(DecodeSection(in, "pagemap", runs, kRunList));
  for (const PageRun& p : *runs) {
    if ((p.addr & 4095) != 0 || p.pages == 0 || p.pages > (1ull << 36)) return Malformed("pagemap");
  }
  return Status::Ok();
}

Result<std::vector<PageRun>> DecodePagemapSection(std::string_view in) {
  std::vector<PageRun> runs;
  RETURN_IF_ERROR(DecodePagemap(in, &runs));
  return runs;
}

namespace {

std::uint64_t RunEnd(const PageRun& r) {
  return r.addr + r.pages * kPageSize;
}

// Appends [lo, hi) to `out`, merged with the run before it when adjacent
// and of the same flag.
void PushRun(std::vector<PageRun>* out, std::uint64_t lo, std::uint64_t hi, bool cow_shared) {
  if (lo >= hi) return;
  if (!out->empty() && RunEnd(out->back()) == lo && out->back().cow_shared == cow_shared) {
    out->back().pages += (hi - lo) / kPageSize;
  } else {
    out->push_back({lo, (hi - lo) / kPageSize, cow_shared});
  }
}

}  // namespace

std::vector<PageRun> RunsUnion(const std::vector<PageRun>& a, const std::vector<PageRun>& b) {
  std::vector<PageRun> all(a);
  all.insert(all.end(), b.begin(), b.end());
  std::sort(all.begin(), all.end(), [](const PageRun& x, const PageRun& y) { return x.addr < y.addr; });
  std::vector<PageRun> out;
  for (const auto& r : all) {
    if (!out.empty() && RunEnd(out.back()) >= r.addr) {
      std::uint64_t end = std::max(RunEnd(out.back()), RunEnd(r));
      out.back().pages = (end - out.back().addr) / kPageSize;
    } else {
      out.push_back({r.addr, r.pages});
    }
  }
  return out;
}

std::vector<PageRun> RunsIntersect(const std::vector<PageRun>& a, const std::vector<PageRun>& b) {
  std::vector<PageRun> out;
  std::size_t j = 0;
  for (const auto& r : a) {
    while (j < b.size() && RunEnd(b[j]) <= r.addr) ++j;
    for (std::size_t k = j; k < b.size() && b[k].addr < RunEnd(r); ++k)
      PushRun(&out, std::max(r.addr, b[k].addr), std::min(RunEnd(r), RunEnd(b[k])), r.cow_shared);
  }
  return out;
}

std::vector<PageRun> RunsSubtract(const std::vector<PageRun>& a, const std::vector<PageRun>& b) {
  std::vector<PageRun> out;
  std::size_t j = 0;
  for (const auto& r : a) {
    while (j < b.size() && RunEnd(b[j]) <= r.addr) ++j;
    std::uint64_t cur = r.addr;
    for (std::size_t k = j; k < b.size() && b[k].addr < RunEnd(r); ++k) {
      PushRun(&out, cur, b[k].addr, r.cow_shared);
      cur = std::max(cur, RunEnd(b[k]));
    }
    PushRun(&out, cur, RunEnd(r), r.cow_shared);
  }
  return out;
}

std::uint64_t PagemapPages(const std::vector<PageRun>& runs) {
  std::uint64_t n = 0;
  for (const auto& p : runs) n += p.pages;
  return n;
}

Status WriteModel(image::ImageWriter* w, const ProcessModel& m, const std::string& prefix) {
  RETURN_IF_ERROR(w->AddSection(kSecCore, prefix + "core", "", EncodeCore(m.core)));
  for (const auto& t : m.threads) {
    RETURN_IF_ERROR(
        w->AddSection(kSecThread, prefix + "thread." + std::to_string(t.tid), "", EncodeThread(t)));
  }
  RETURN_IF_ERROR(w->AddSection(kSecFiles, prefix + "files", "", EncodeFiles(m.files)));
  RETURN_IF_ERROR(w->AddSection(kSecVmas, prefix + "vmas", "", EncodeVmas(m.vmas)));
  RETURN_IF_ERROR(w->AddSection(kSecFds, prefix + "fds", "", EncodeFds(m.fds)));
  RETURN_IF_ERROR(w->AddSection(kSecSignals, prefix + "signals", "", EncodeSignals(m.signals)));
  if (m.creds.recorded) RETURN_IF_ERROR(w->AddSection(kSecCreds, prefix + "creds", "", EncodeCreds(m.creds)));
  if (!m.events.empty())
    RETURN_IF_ERROR(w->AddSection(kSecEvents, prefix + "events", "", EncodeEvents(m.events)));
  if (!m.locks.empty()) RETURN_IF_ERROR(w->AddSection(kSecLocks, prefix + "locks", "", EncodeLocks(m.locks)));
  if (!m.inet_sockets.empty())
    RETURN_IF_ERROR(w->AddSection(kSecInetSockets, prefix + "inet", "", EncodeInetSockets(m.inet_sockets)));
  if (std::string c = EncodeConnections(m.inet_sockets); !c.empty())
    RETURN_IF_ERROR(w->AddSection(kSecConnections, prefix + "connections", "", c));
  if (!m.sockets.empty())
    RETURN_IF_ERROR(w->AddSection(kSecSockets, prefix + "sockets", "", EncodeSockets(m.sockets)));
  if (!m.unix_external.empty()) {
    RETURN_IF_ERROR(
        w->AddSection(kSecUnixExternal, prefix + "unix_external", "", EncodeUnixExternal(m.unix_external)));
  }
  if (!m.unix_listeners.empty()) {
    RETURN_IF_ERROR(w->AddSection(kSecUnixListeners, prefix + "unix_listeners", "",
                                  EncodeUnixListeners(m.unix_listeners)));
  }
  if (!m.posix_timers.empty())
    RETURN_IF_ERROR(w->AddSection(kSecPosixTimers, prefix + "timers", "", EncodePosixTimers(m.posix_timers)));
  return w->AddSection(kSecVdso, prefix + "vdso", "", m.vdso);
}

Result<ProcessModel> ReadModel(const image::ImageReader& r, const std::string& prefix) {
  if (r.header().kind != image::ImageKind::kProcess) {
    return InvalidArgument(r.source().Name() + " is a " + image::ImageKindName(r.header().kind) +
                           " image, not a process image");
  }
  ProcessModel m;
  auto need = [&](std::uint32_t type, const char* name) -> Result<std::string> {
    const image::SectionInfo* s = r.Find(type, prefix + name);
    if (s == nullptr) {
      return Corruption(r.source().Name() + ": process image has no " + prefix + name + " section");
    }
    return r.ReadSection(*s);
  };
  ASSIGN_OR_RETURN(std::string core, need(kSecCore, "core"));
  RETURN_IF_ERROR(DecodeCore(core, &m.core));
  for (const image::SectionInfo* sp : r.Known()) {
    const image::SectionInfo& s = *sp;
    if (s.type != kSecThread || s.name.compare(0, prefix.size(), prefix) != 0 ||
        s.name.find('/', prefix.size()) != std::string::npos) {
      continue;
    }
    ASSIGN_OR_RETURN(std::string t, r.ReadSection(s));
    ThreadState ts;
    RETURN_IF_ERROR(DecodeThread(t, &ts));
    m.threads.push_back(std::move(ts));
  }
  if (m.threads.empty()) return Corruption(r.source().Name() + ": process image has no threads");
  ASSIGN_OR_RETURN(std::string files, need(kSecFiles, "files"));
  RETURN_IF_ERROR(DecodeFiles(files, &m.files));
  ASSIGN_OR_RETURN(std::string vmas, need(kSecVmas, "vmas"));
  RETURN_IF_ERROR(DecodeVmas(vmas, &m.vmas));
  ASSIGN_OR_RETURN(std::string fds, need(kSecFds, "fds"));
  RETURN_IF_ERROR(DecodeFds(fds, &m.fds));
  ASSIGN_OR_RETURN(std::string sig, need(kSecSignals, "signals"));
  RETURN_IF_ERROR(DecodeSignals(sig, &m.signals));
  ASSIGN_OR_RETURN(m.vdso, need(kSecVdso, "vdso"));
  // Credentials: images written before they were recorded have none.
  if (const image::SectionInfo* s = r.Find(kSecCreds, prefix + "creds"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string creds, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeCreds(creds, &m.creds));
    for (const auto& t : m.creds.threads) {
      bool known = false;
      for (const auto& th : m.threads) known = known || th.tid == t.tid;
      if (!known)
        return Corruption("creds section: thread " + std::to_string(t.tid) + " is not in the image");
    }
  }
  // Event files: images without any have no section.
  if (const image::SectionInfo* s = r.Find(kSecEvents, prefix + "events"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string ev, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeEvents(ev, &m.events));
  }
  // Locks: images without any have no section.
  if (const image::SectionInfo* s = r.Find(kSecLocks, prefix + "locks"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string locks, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeLocks(locks, &m.locks));
  }
  // POSIX timers: images without any have no section.
  if (const image::SectionInfo* s = r.Find(kSecPosixTimers, prefix + "timers"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string timers, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodePosixTimers(timers, &m.posix_timers));
  }
  if (const image::SectionInfo* s = r.Find(kSecInetSockets, prefix + "inet"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string inet, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeInetSockets(inet, &m.inet_sockets));
  }
  if (const image::SectionInfo* s = r.Find(kSecConnections, prefix + "connections"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string conns, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeConnections(conns, &m.inet_sockets));
  }
  // Socket pairs: images without any have no section.
  if (const image::SectionInfo* s = r.Find(kSecUnixExternal, prefix + "unix_external"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string x, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeUnixExternal(x, &m.unix_external));
  }
  if (const image::SectionInfo* s = r.Find(kSecUnixListeners, prefix + "unix_listeners"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string l, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeUnixListeners(l, &m.unix_listeners));
  }
  if (const image::SectionInfo* s = r.Find(kSecSockets, prefix + "sockets"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string socks, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodeSockets(socks, &m.sockets));
  }
  // A streamed image's pagemap comes after the pages (RestorePages reads it).
  if (const image::SectionInfo* s = r.Find(kSecPagemap, prefix + "pagemap"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string pm, r.ReadSection(*s));
    RETURN_IF_ERROR(DecodePagemap(pm, &m.pagemap));
  } else if (!r.streamed()) {
    return Corruption(r.source().Name() + ": process image has no " + prefix + "pagemap section");
  }
  // Cross references.
  auto file_ok = [&](std::int32_t i) { return i >= -1 && i < static_cast<std::int32_t>(m.files.size()); };
  if (!file_ok(m.core.exe_file)) return Corruption("core section: executable file index out of range");
  for (const auto& v : m.vmas) {
    if (!file_ok(v.file)) return Corruption("vmas section: file index out of range");
  }
  for (const auto& f : m.fds) {
    if (!file_ok(f.file)) return Corruption("fds section: file index out of range");
    bool inet = f.kind == FdKind::kInet || f.kind == FdKind::kInetConnected;
    bool listener = f.kind == FdKind::kUnixListener, external = f.kind == FdKind::kUnixExternal;
    if ((f.kind != FdKind::kEvent && f.kind != FdKind::kSocket && !inet && !listener && !external) ||
        f.dup_of >= 0)
      continue;
    int found = 0;
    for (const auto& x : m.unix_external) found += x.fd == f.fd && external ? 1 : 0;
    for (const auto& l : m.unix_listeners) found += l.fd == f.fd && listener ? 1 : 0;
    for (const auto& so : m.inet_sockets) {
      found += so.fd == f.fd && inet && so.peer.empty() == (f.kind == FdKind::kInet) ? 1 : 0;
    }
    for (const auto& e : m.events) found += e.fd == f.fd && f.kind == FdKind::kEvent ? 1 : 0;
    for (const auto& so : m.sockets) found += so.fd == f.fd && f.kind == FdKind::kSocket ? 1 : 0;
    if (found != 1) return Corruption("no single event file or socket for fd " + std::to_string(f.fd));
  }
  for (const auto& l : m.locks) {
    bool ok = false;
    for (const auto& f : m.fds) ok = ok || (f.fd == l.fd && f.dup_of < 0);
    if (!ok)
      return Corruption("locks section: fd " + std::to_string(l.fd) + " is not a descriptor of the process");
  }
  for (const auto& so : m.sockets) {
    bool ok = false;
    for (const auto& f : m.fds) ok = ok || (f.fd == so.fd && f.kind == FdKind::kSocket && f.dup_of < 0);
    if (!ok)
      return Corruption("sockets section: fd " + std::to_string(so.fd) + " is not a socket descriptor");
  }
  for (const auto& e : m.events) {
    bool ok = false;
    for (const auto& f : m.fds) ok = ok || (f.fd == e.fd && f.kind == FdKind::kEvent && f.dup_of < 0);
    if (!ok) return Corruption("events section: fd " + std::to_string(e.fd) + " is not an event descriptor");
  }
  return m;
}

std::string HexAddr(std::uint64_t v) {
  static const char* d = "0123456789abcdef";
  std::string o;
  do {
    o.insert(o.begin(), d[v & 15]);
    v >>= 4;
  } while (v != 0);
  return o;
}

const char* VmaKindName(VmaKind k) {
  switch (k) {
    case VmaKind::kAnon:
      return "anon";
    case VmaKind::kFile:
      return "file";
    case VmaKind::kHeap:
      return "heap";
    case VmaKind::kStack:
      return "stack";
    case VmaKind::kVdso:
      return "vdso";
    case VmaKind::kVvar:
      return "vvar";
    case VmaKind::kVsyscall:
      return "vsyscall";
    case VmaKind::kSharedAnon:
      return "shared-anon";
    case VmaKind::kSysvShm:
      return "sysv-shm";
  }
  return "?";
}

const char* FdKindName(FdKind k) {
  switch (k) {
    case FdKind::kRegular:
      return "file";
    case FdKind::kDevice:
      return "device";
    case FdKind::kFifo:
      return "fifo";
    case FdKind::kPipe:
      return "pipe";
    case FdKind::kDeleted:
      return "deleted-file";
    case FdKind::kEvent:
      return "event";
    case FdKind::kSocket:
      return "socket";
    case FdKind::kInet:
      return "inet-socket";
    case FdKind::kInetConnected:
      return "inet-connection";
    case FdKind::kUnixListener:
      return "unix-listener";
    case FdKind::kUnixExternal:
      return "unix-external";
  }
  return "?";
}

const char* EventKindName(EventKind k) {
  switch (k) {
    case EventKind::kEventfd:
      return "eventfd";
    case EventKind::kSignalfd:
      return "signalfd";
    case EventKind::kTimerfd:
      return "timerfd";
    case EventKind::kEpoll:
      return "epoll";
    case EventKind::kInotify:
      return "inotify";
  }
  return "?";
}

}  // namespace ckpt::engine
