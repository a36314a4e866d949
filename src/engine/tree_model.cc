// Encoding and decoding of the process-tree sections (docs/image-format.md,
// "Process trees").
#include "engine/tree_model.h"

#include "engine/model_codec.h"
#include "util/bytes.h"

namespace ckpt::engine {

namespace {

Status DecodeTree(std::string_view in, std::vector<Member>* out) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "tree"));
  std::uint64_t n = r.Varint();
  if (n == 0 || n > (1u << 16)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    Member m;
    m.pid = GetI32(r);
    m.ppid = GetI32(r);
    m.pgid = GetI32(r);
    m.sid = GetI32(r);
    m.zombie = r.U8() != 0;
    m.exit_status = GetI32(r);
    out->push_back(m);
  }
  return Expect(r, "tree");
}

Status DecodeShmObjects(std::string_view in, TreeModel* t) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "shm"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    ShmObject o;
    o.id = r.U32();
    std::uint8_t k = r.U8();
    if (k > static_cast<std::uint8_t>(ShmKind::kSysv)) r.Fail();
    o.kind = static_cast<ShmKind>(k);
    o.name = std::string(r.String());
    o.size = r.U64();
    o.mode = r.U32();
    o.uid = r.U32();
    o.gid = r.U32();
    o.dev = r.U64();
    o.ino = r.U64();
    o.sysv_key = GetI32(r);
    o.sysv_id = GetI32(r);
    std::uint64_t runs = r.Varint();
    if (runs > (1u << 26)) r.Fail();
    for (std::uint64_t j = 0; j < runs && r.ok(); ++j) {
      PageRun p;
      p.addr = r.U64();
      p.pages = r.U64();
      if ((p.addr & (kPageSize - 1)) != 0 || p.pages == 0 ||
          p.addr + p.pages * kPageSize > o.size + kPageSize - 1)
        r.Fail();
      o.runs.push_back(p);
    }
    if (o.id != i) r.Fail();
    t->objects.push_back(std::move(o));
  }
  n = r.Varint();
  if (n > (1u << 24)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    ShmAttach a;
    a.pid = GetI32(r);
    a.start = r.U64();
    a.end = r.U64();
    a.pgoff = r.U64();
    a.object = r.U32();
    if (a.object >= t->objects.size() || a.end <= a.start) r.Fail();
    t->attaches.push_back(a);
  }
  n = r.Varint();
  if (n > (1u << 24)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    ShmFd f;
    f.pid = GetI32(r);
    f.fd = GetI32(r);
    f.object = r.U32();
    if (f.object >= t->objects.size()) r.Fail();
    t->fds.push_back(f);
  }
  return Expect(r, "shm");
}

Status DecodeSemSets(std::string_view in, TreeModel* t) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "sysv.sem"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    SemSet s;
    s.id = GetI32(r);
    s.key = GetI32(r);
    s.mode = r.U32();
    s.uid = r.U32();
    s.gid = r.U32();
    std::uint64_t k = r.Varint();
    if (k == 0 || k > 65536) r.Fail();
    for (std::uint64_t j = 0; j < k && r.ok(); ++j) {
      s.values.push_back(r.U16());
      s.sempid.push_back(GetI32(r));
    }
    t->sems.push_back(std::move(s));
  }
  n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    SemUndo u;
    u.pid = GetI32(r);
    u.semid = GetI32(r);
    std::uint64_t k = r.Varint();
    if (k > 65536) r.Fail();
    for (std::uint64_t j = 0; j < k && r.ok(); ++j) u.adj.push_back(static_cast<std::int16_t>(r.U16()));
    t->undo.push_back(std::move(u));
  }
  return Expect(r, "sysv.sem");
}

Status DecodeMsgQueues(std::string_view in, std::vector<MsgQueue>* out) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "sysv.msg"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    MsgQueue q;
    q.id = GetI32(r);
    q.key = GetI32(r);
    q.mode = r.U32();
    q.uid = r.U32();
    q.gid = r.U32();
    q.qbytes = r.U64();
    std::uint64_t k = r.Varint();
    if (k > (1u << 24)) r.Fail();
    for (std::uint64_t j = 0; j < k && r.ok(); ++j) {
      SysvMessage m;
      m.type = static_cast<std::int64_t>(r.U64());
      m.text = std::string(r.String());
      if (m.type <= 0) r.Fail();
      q.messages.push_back(std::move(m));
    }
    out->push_back(std::move(q));
  }
  return Expect(r, "sysv.msg");
}

}  // namespace

std::string EncodeTree(const std::vector<Member>& members) {
  std::string o = VersionedSection();
  PutVarint(&o, members.size());
  for (const auto& m : members) {
    PutI32(&o, m.pid);
    PutI32(&o, m.ppid);
    PutI32(&o, m.pgid);
    PutI32(&o, m.sid);
    o.push_back(m.zombie ? 1 : 0);
    PutI32(&o, m.exit_status);
  }
  return o;
}

std::string EncodeShmObjects(const TreeModel& t) {
  std::string o = VersionedSection();
  PutVarint(&o, t.objects.size());
  for (const auto& s : t.objects) {
    PutU32(&o, s.id);
    o.push_back(static_cast<char>(s.kind));
    PutString(&o, s.name);
    PutU64(&o, s.size);
    PutU32(&o, s.mode);
    PutU32(&o, s.uid);
    PutU32(&o, s.gid);
    PutU64(&o, s.dev);
    PutU64(&o, s.ino);
    PutI32(&o, s.sysv_key);
    PutI32(&o, s.sysv_id);
    PutVarint(&o, s.runs.size());
    for (const auto& p : s.runs) {
      PutU64(&o, p.addr);
      PutU64(&o, p.pages);
    }
  }
  PutVarint(&o, t.attaches.size());
  for (const auto& a : t.attaches) {
    PutI32(&o, a.pid);
    PutU64(&o, a.start);
    PutU64(&o, a.end);
    PutU64(&o, a.pgoff);
    PutU32(&o, a.object);
  }
  PutVarint(&o, t.fds.size());
  for (const auto& f : t.fds) {
    PutI32(&o, f.pid);
    PutI32(&o, f.fd);
    PutU32(&o, f.object);
  }
  return o;
}

std::string EncodeSemSets(const TreeModel& t) {
  std::string o = VersionedSection();
  PutVarint(&o, t.sems.size());
  for (const auto& s : t.sems) {
    PutI32(&o, s.id);
    PutI32(&o, s.key);
    PutU32(&o, s.mode);
    PutU32(&o, s.uid);
    PutU32(&o, s.gid);
    PutVarint(&o, s.values.size());
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      PutU16(&o, s.values[i]);
      PutI32(&o, i < s.sempid.size() ? s.sempid[i] : 0);
    }
  }
  PutVarint(&o, t.undo.size());
  for (const auto& u : t.undo) {
    PutI32(&o, u.pid);
    PutI32(&o, u.semid);
    PutVarint(&o, u.adj.size());
    for (std::int16_t a : u.adj) PutU16(&o, static_cast<std::uint16_t>(a));
  }
  return o;
}

std::string EncodeMsgQueues(const std::vector<MsgQueue>& queues) {
  std::string o = VersionedSection();
  PutVarint(&o, queues.size());
  for (const auto& q : queues) {
    PutI32(&o, q.id);
    PutI32(&o, q.key);
    PutU32(&o, q.mode);
    PutU32(&o, q.uid);
    PutU32(&o, q.gid);
    PutU64(&o, q.qbytes);
    PutVarint(&o, q.messages.size());
    for (const auto& m : q.messages) {
      PutU64(&o, static_cast<std::uint64_t>(m.type));
      PutString(&o, m.text);
    }
  }
  return o;
}

std::string MemberPrefix(std::int32_t pid) {
  return std::to_string(pid) + "/";
}

std::string SectionPrefix(const TreeModel& t, std::int32_t pid) {
  return t.members.size() > 1 ? MemberPrefix(pid) : std::string();
}

std::string ShmPagesName(std::uint32_t id) {
  return "shm." + std::to_string(id);
}

Status WriteTreeModel(image::ImageWriter* w, const TreeModel& t) {
  RETURN_IF_ERROR(w->AddSection(kSecTree, "tree", "", EncodeTree(t.members)));
  RETURN_IF_ERROR(w->AddSection(kSecShmObjects, "shm", "", EncodeShmObjects(t)));
  RETURN_IF_ERROR(w->AddSection(kSecSysvSem, "sysv.sem", "", EncodeSemSets(t)));
  return w->AddSection(kSecSysvMsg, "sysv.msg", "", EncodeMsgQueues(t.queues));
}

Result<TreeModel> ReadTreeModel(const image::ImageReader& r, bool* is_tree) {
  TreeModel t;
  const image::SectionInfo* tree = r.Find(kSecTree);
  *is_tree = tree != nullptr;
  if (tree == nullptr) {
    // A single-process image: its pid is in the core section.
    ASSIGN_OR_RETURN(ProcessModel m, ReadModel(r, ""));
    Member one;
    one.pid = m.core.pid;
    t.members.push_back(one);
    return t;
  }
  ASSIGN_OR_RETURN(std::string tr, r.ReadSection(*tree));
  RETURN_IF_ERROR(DecodeTree(tr, &t.members));
  auto optional = [&](std::uint32_t type, auto decode) -> Status {
    const image::SectionInfo* s = r.Find(type);
    if (s == nullptr) return Corruption(r.source().Name() + ": process tree image lacks a section");
    ASSIGN_OR_RETURN(std::string data, r.ReadSection(*s));
    return decode(data);
  };
  RETURN_IF_ERROR(optional(kSecShmObjects, [&](std::string_view d) { return DecodeShmObjects(d, &t); }));
  RETURN_IF_ERROR(optional(kSecSysvSem, [&](std::string_view d) { return DecodeSemSets(d, &t); }));
  RETURN_IF_ERROR(optional(kSecSysvMsg, [&](std::string_view d) { return DecodeMsgQueues(d, &t.queues); }));
  // Every parent comes before its children; the root has no parent inside.
  for (std::size_t i = 1; i < t.members.size(); ++i) {
    bool found = false;
    for (std::size_t j = 0; j < i && !found; ++j) found = t.members[j].pid == t.members[i].ppid;
    if (!found) return Corruption(r.source().Name() + ": tree section lists a child before its parent");
  }
  return t;
}

const char* ShmKindName(ShmKind k) {
  switch (k) {
    case ShmKind::kSharedAnon:
      return "shared-anon";
    case ShmKind::kMemfd:
      return "memfd";
    case ShmKind::kPosixShm:
      return "posix-shm";
    case ShmKind::kDeleted:
      return "deleted-shm";
    case ShmKind::kSysv:
      return "sysv-shm";
  }
  return "?";
}

}  // namespace ckpt::engine
