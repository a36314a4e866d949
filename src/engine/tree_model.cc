// Encoding and decoding of the process-tree sections (docs/image-format.md,
// "Process trees"): one field list per struct (tagged.h), the checks beyond
// it after each decoder.
#include "engine/tree_model.h"

#include "engine/model_codec.h"
#include "util/bytes.h"

namespace ckpt::engine {

template <class IO>
void Fields(IO& io, Member& m) {
  io(1, "pid", m.pid);
  io(2, "ppid", m.ppid);
  io(3, "pgid", m.pgid);
  io(4, "sid", m.sid);
  io(5, "zombie", m.zombie);
  io(6, "exit_status", m.exit_status);
}

template <class IO>
void Fields(IO& io, ShmObject& o) {
  io(1, "id", o.id);
  io(2, "kind", o.kind);
  io(3, "name", o.name);
  io(4, "size", o.size);
  io(5, "mode", o.mode);
  io(6, "uid", o.uid);
  io(7, "gid", o.gid);
  io(8, "dev", o.dev);
  io(9, "ino", o.ino);
  io(10, "sysv_key", o.sysv_key);
  io(11, "sysv_id", o.sysv_id);
  io(12, "run", o.runs, Max{1u << 26});
}

template <class IO>
void Fields(IO& io, ShmAttach& a) {
  io(1, "pid", a.pid);
  io(2, "start", a.start);
  io(3, "end", a.end);
  io(4, "pgoff", a.pgoff);
  io(5, "object", a.object);
}

template <class IO>
void Fields(IO& io, ShmFd& f) {
  io(1, "pid", f.pid);
  io(2, "fd", f.fd);
  io(3, "object", f.object);
}

template <class IO>
void Fields(IO& io, SemSet& s) {
  io(1, "id", s.id);
  io(2, "key", s.key);
  io(3, "mode", s.mode);
  io(4, "uid", s.uid);
  io(5, "gid", s.gid);
  io(6, "values", s.values, Max{65536});
  io(7, "sempid", s.sempid, Max{65536});  // as many as values
}

template <class IO>
void Fields(IO& io, SemUndo& u) {
  io(1, "pid", u.pid);
  io(2, "semid", u.semid);
  io(3, "adj", u.adj, Max{65536});
}

template <class IO>
void Fields(IO& io, SysvMessage& m) {
  io(1, "type", m.type);
  io(2, "text", m.text);
}

template <class IO>
void Fields(IO& io, MsgQueue& q) {
  io(1, "id", q.id);
  io(2, "key", q.key);
  io(3, "mode", q.mode);
  io(4, "uid", q.uid);
  io(5, "gid", q.gid);
  io(6, "qbytes", q.qbytes);
  io(7, "message", q.messages, Max{1u << 24});
}

namespace {

constexpr auto kMemberList = [](auto& io, std::vector<Member>& v) { io(1, "member", v, Max{1u << 16}); };
constexpr auto kShmFields = [](auto& io, TreeModel& t) {
  io(1, "object", t.objects, Max{1u << 20});
  io(2, "attach", t.attaches, Max{1u << 24});
  io(3, "fd", t.fds, Max{1u << 24});
};
constexpr auto kSemFields = [](auto& io, TreeModel& t) {
  io(1, "set", t.sems, Max{1u << 20});
  io(2, "undo", t.undo, Max{1u << 20});
};
constexpr auto kQueueList = [](auto& io, std::vector<MsgQueue>& v) { io(1, "queue", v, Max{1u << 20}); };

Status DecodeTree(std::string_view in, std::vector<Member>* out) {
  RETURN_IF_ERROR(DecodeSection(in, "tree", out, kMemberList));
  if (out->empty()) return Malformed("tree");
  return Status::Ok();
}

Status DecodeShmObjects(std::string_view in, TreeModel* t) {
  RETURN_IF_ERROR(DecodeSection(in, "shm", t, kShmFields));
  for (std::size_t i = 0; i < t->objects.size(); ++i) {
    const ShmObject& o = t->objects[i];
    if (o.kind > ShmKind::kSysv || o.id != i) return Malformed("shm");
    for (const PageRun& p : o.runs) {
      if ((p.addr & (kPageSize - 1)) != 0 || p.pages == 0 || p.pages > (1ull << 36) ||
          p.addr + p.pages * kPageSize > o.size + kPageSize - 1)
        return Malformed("shm");
    }
  }
  for (const ShmAttach& a : t->attaches) {
    if (a.object >= t->objects.size() || a.end <= a.start) return Malformed("shm");
  }
  for (const ShmFd& f : t->fds) {
    if (f.object >= t->objects.size()) return Malformed("shm");
  }
  return Status::Ok();
}

Status DecodeSemSets(std::string_view in, TreeModel* t) {
  RETURN_IF_ERROR(DecodeSection(in, "sysv.sem", t, kSemFields));
  for (const SemSet& s : t->sems) {
    if (s.values.empty() || s.sempid.size() != s.values.size()) return Malformed("sysv.sem");
  }
  return Status::Ok();
}

Status DecodeMsgQueues(std::string_view in, std::vector<MsgQueue>* out) {
  RETURN_IF_ERROR(DecodeSection(in, "sysv.msg", out, kQueueList));
  for (const MsgQueue& q : *out) {
    for (const SysvMessage& m : q.messages) {
      if (m.type <= 0) return Malformed("sysv.msg");
    }
  }
  return Status::Ok();
}

}  // namespace

std::string EncodeTree(const std::vector<Member>& members) {
  return EncodeSection(members, kMemberList);
}

std::string EncodeShmObjects(const TreeModel& t) {
  return EncodeSection(t, kShmFields);
}

std::string EncodeSemSets(const TreeModel& t) {
  // One last operator per semaphore, as the decoder requires.
  TreeModel sems;
  sems.sems = t.sems;
  for (auto& s : sems.sems) s.sempid.resize(s.values.size());
  sems.undo = t.undo;
  return EncodeSection(sems, kSemFields);
}

std::string EncodeMsgQueues(const std::vector<MsgQueue>& queues) {
  return EncodeSection(queues, kQueueList);
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
