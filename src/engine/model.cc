// Encoding and decoding of the process image sections (docs/image-format.md).
#include "engine/model.h"

#include <algorithm>

#include "engine/model_codec.h"
#include "util/bytes.h"

namespace ckpt::engine {

namespace {

void PutSigList(std::string* o, const std::vector<std::string>& l) {
  PutVarint(o, l.size());
  for (const auto& s : l) PutString(o, s);
}
void GetSigList(ByteReader& r, std::vector<std::string>* l) {
  std::uint64_t n = r.Varint();
  if (n > 4096) return r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    std::string_view s = r.String();
    if (s.size() != 128) return r.Fail();
    l->emplace_back(s);
  }
}

}  // namespace

std::string EncodeCore(const Core& c) {
  std::string o = VersionedSection();
  PutI32(&o, c.pid);
  PutString(&o, c.comm);
  PutI32(&o, c.exe_file);
  PutString(&o, c.cwd);
  PutU32(&o, c.umask);
  PutU32(&o, c.personality);
  PutVarint(&o, c.rlimits.size());
  for (const auto& l : c.rlimits) {
    PutU64(&o, l.cur);
    PutU64(&o, l.max);
  }
  const MmLayout& m = c.mm;
  for (std::uint64_t v : {m.start_code, m.end_code, m.start_data, m.end_data, m.start_brk, m.brk,
                          m.start_stack, m.arg_start, m.arg_end, m.env_start, m.env_end}) {
    PutU64(&o, v);
  }
  PutVarint(&o, c.auxv.size());
  for (std::uint64_t v : c.auxv) PutU64(&o, v);
  PutString(&o, c.kernel_release);
  PutString(&o, c.host);
  PutU64(&o, static_cast<std::uint64_t>(c.dumped_at_ns));
  PutU32(&o, c.xsave_size);
  PutVarint(&o, c.itimers.size());
  for (std::uint64_t v : c.itimers) PutU64(&o, v);
  PutU32(&o, c.leader);
  return o;
}

static Status DecodeCore(std::string_view in, Core* c) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "core"));
  c->pid = GetI32(r);
  c->comm = std::string(r.String());
  c->exe_file = GetI32(r);
  c->cwd = std::string(r.String());
  c->umask = r.U32();
  c->personality = r.U32();
  std::uint64_t n = r.Varint();
  if (n > 64) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    Rlimit l;
    l.cur = r.U64();
    l.max = r.U64();
    c->rlimits.push_back(l);
  }
  MmLayout& m = c->mm;
  for (std::uint64_t* p : {&m.start_code, &m.end_code, &m.start_data, &m.end_data, &m.start_brk, &m.brk,
                           &m.start_stack, &m.arg_start, &m.arg_end, &m.env_start, &m.env_end}) {
    *p = r.U64();
  }
  n = r.Varint();
  if (n > 512) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) c->auxv.push_back(r.U64());
  c->kernel_release = std::string(r.String());
  c->host = std::string(r.String());
  c->dumped_at_ns = static_cast<std::int64_t>(r.U64());
  c->xsave_size = r.U32();
  n = r.Varint();
  if (n > 64) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) c->itimers.push_back(r.U64());
  c->leader = r.U32();
  return Expect(r, "core");
}

std::string EncodeThread(const ThreadState& t) {
  std::string o = VersionedSection();
  PutI32(&o, t.tid);
  PutVarint(&o, t.gpregs.size());
  for (std::uint64_t v : t.gpregs) PutU64(&o, v);
  PutString(&o, t.xsave);
  PutU64(&o, t.sigmask);
  PutU64(&o, t.rseq_ptr);
  PutU32(&o, t.rseq_len);
  PutU32(&o, t.rseq_sig);
  PutU64(&o, t.clear_tid);
  PutU64(&o, t.altstack_sp);
  PutU64(&o, t.altstack_size);
  PutU32(&o, t.altstack_flags);
  PutU64(&o, t.robust_list);
  PutU64(&o, t.robust_len);
  PutString(&o, t.comm);
  PutSigList(&o, t.pending);
  return o;
}

static Status DecodeThread(std::string_view in, ThreadState* t) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "thread"));
  t->tid = GetI32(r);
  if (r.Varint() != t->gpregs.size()) return Corruption("thread section: unexpected register count");
  for (auto& v : t->gpregs) v = r.U64();
  t->xsave = std::string(r.String());
  t->sigmask = r.U64();
  t->rseq_ptr = r.U64();
  t->rseq_len = r.U32();
  t->rseq_sig = r.U32();
  t->clear_tid = r.U64();
  t->altstack_sp = r.U64();
  t->altstack_size = r.U64();
  t->altstack_flags = r.U32();
  t->robust_list = r.U64();
  t->robust_len = r.U64();
  t->comm = std::string(r.String());
  GetSigList(r, &t->pending);
  return Expect(r, "thread");
}

std::string EncodeVmas(const std::vector<Vma>& v) {
  std::string o = VersionedSection();
  PutVarint(&o, v.size());
  for (const auto& m : v) {
    PutU64(&o, m.start);
    PutU64(&o, m.end);
    PutU32(&o, m.prot);
    PutU32(&o, m.flags);
    PutU64(&o, m.pgoff);
    PutI32(&o, m.file);
    o.push_back(static_cast<char>(m.kind));
    PutString(&o, m.name);
  }
  return o;
}

static Status DecodeVmas(std::string_view in, std::vector<Vma>* v) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "vmas"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 24)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    Vma m;
    m.start = r.U64();
    m.end = r.U64();
    m.prot = r.U32();
    m.flags = r.U32();
    m.pgoff = r.U64();
    m.file = GetI32(r);
    std::uint8_t k = r.U8();
    if (k > static_cast<std::uint8_t>(VmaKind::kSysvShm)) r.Fail();
    m.kind = static_cast<VmaKind>(k);
    m.name = std::string(r.String());
    if (m.end <= m.start || (m.start & 4095) != 0 || (m.end & 4095) != 0) r.Fail();
    if (!v->empty() && m.start < v->back().end) r.Fail();
    v->push_back(std::move(m));
  }
  return Expect(r, "vmas");
}

std::string EncodeFiles(const std::vector<FileRef>& f) {
  std::string o = VersionedSection();
  PutVarint(&o, f.size());
  for (const auto& x : f) {
    PutString(&o, x.path);
    PutU64(&o, x.size);
    PutU64(&o, static_cast<std::uint64_t>(x.mtime_ns));
    PutU32(&o, x.mode);
    PutU64(&o, x.ino);
    PutU64(&o, x.dev);
    PutString(&o, x.build_id);
    o.push_back(x.deleted ? 1 : 0);
  }
  return o;
}

static Status DecodeFiles(std::string_view in, std::vector<FileRef>* f) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "files"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    FileRef x;
    x.path = std::string(r.String());
    x.size = r.U64();
    x.mtime_ns = static_cast<std::int64_t>(r.U64());
    x.mode = r.U32();
    x.ino = r.U64();
    x.dev = r.U64();
    x.build_id = std::string(r.String());
    x.deleted = r.U8() != 0;
    f->push_back(std::move(x));
  }
  return Expect(r, "files");
}

std::string EncodeFds(const std::vector<Fd>& f) {
  std::string o = VersionedSection();
  PutVarint(&o, f.size());
  for (const auto& x : f) {
    PutI32(&o, x.fd);
    o.push_back(static_cast<char>(x.kind));
    PutU32(&o, x.flags);
    PutU64(&o, x.pos);
    PutI32(&o, x.file);
    PutU64(&o, x.pipe_ino);
    o.push_back(static_cast<char>((x.pipe_write_end ? 1 : 0) | (x.pipe_internal ? 2 : 0)));
    PutI32(&o, x.dup_of);
  }
  return o;
}

static Status DecodeFds(std::string_view in, std::vector<Fd>* f) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "fds"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    Fd x;
    x.fd = GetI32(r);
    std::uint8_t k = r.U8();
    if (k > static_cast<std::uint8_t>(FdKind::kUnixExternal)) r.Fail();
    x.kind = static_cast<FdKind>(k);
    x.flags = r.U32();
    x.pos = r.U64();
    x.file = GetI32(r);
    x.pipe_ino = r.U64();
    std::uint8_t b = r.U8();
    x.pipe_write_end = (b & 1) != 0;
    x.pipe_internal = (b & 2) != 0;
    x.dup_of = GetI32(r);
    if (x.fd < 0 || x.dup_of >= x.fd) r.Fail();
    f->push_back(x);
  }
  return Expect(r, "fds");
}

std::string EncodeSignals(const Signals& s) {
  std::string o = VersionedSection();
  PutVarint(&o, s.actions.size());
  for (const auto& a : s.actions) {
    PutU64(&o, a.handler);
    PutU64(&o, a.flags);
    PutU64(&o, a.restorer);
    PutU64(&o, a.mask);
  }
  PutSigList(&o, s.pending);
  return o;
}

static Status DecodeSignals(std::string_view in, Signals* s) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "signals"));
  if (r.Varint() != s->actions.size()) return Corruption("signals section: unexpected signal count");
  for (auto& a : s->actions) {
    a.handler = r.U64();
    a.flags = r.U64();
    a.restorer = r.U64();
    a.mask = r.U64();
  }
  GetSigList(r, &s->pending);
  return Expect(r, "signals");
}

std::string EncodeCreds(const Creds& c) {
  std::string o = VersionedSection();
  PutU32(&o, c.dumpable);
  PutVarint(&o, c.threads.size());
  for (const auto& t : c.threads) {
    PutI32(&o, t.tid);
    for (std::uint32_t v : t.uid) PutU32(&o, v);
    for (std::uint32_t v : t.gid) PutU32(&o, v);
    PutVarint(&o, t.groups.size());
    for (std::uint32_t g : t.groups) PutU32(&o, g);
    for (std::uint64_t v : {t.cap_inh, t.cap_prm, t.cap_eff, t.cap_bnd, t.cap_amb}) PutU64(&o, v);
    PutU32(&o, t.securebits);
    o.push_back(t.no_new_privs ? 1 : 0);
  }
  return o;
}

static Status DecodeCreds(std::string_view in, Creds* c) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "creds"));
  c->recorded = true;
  c->dumpable = r.U32();
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    ThreadCreds t;
    t.tid = GetI32(r);
    for (auto& v : t.uid) v = r.U32();
    for (auto& v : t.gid) v = r.U32();
    std::uint64_t g = r.Varint();
    if (g > 65536) r.Fail();
    for (std::uint64_t k = 0; k < g && r.ok(); ++k) t.groups.push_back(r.U32());
    for (std::uint64_t* v : {&t.cap_inh, &t.cap_prm, &t.cap_eff, &t.cap_bnd, &t.cap_amb}) *v = r.U64();
    t.securebits = r.U32();
    std::uint8_t nnp = r.U8();
    if (nnp > 1) r.Fail();
    t.no_new_privs = nnp != 0;
    c->threads.push_back(std::move(t));
  }
  return Expect(r, "creds");
}

std::string EncodePagemap(const std::vector<PageRun>& runs) {
  std::string o = VersionedSection();
  PutVarint(&o, runs.size());
  for (const auto& p : runs) {
    PutU64(&o, p.addr);
    PutU64(&o, p.pages);
  }
  return o;
}

static Status DecodePagemap(std::string_view in, std::vector<PageRun>* runs) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "pagemap"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 26)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    PageRun p;
    p.addr = r.U64();
    p.pages = r.U64();
    if ((p.addr & 4095) != 0 || p.pages == 0 || p.pages > (1ull << 36)) r.Fail();
    runs->push_back(p);
  }
  return Expect(r, "pagemap");
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
