#include "group/group_image.h"

#include "util/bytes.h"

namespace ckpt::group {

namespace {
void PutStrings(std::string* o, const std::vector<std::string>& v) {
  PutVarint(o, v.size());
  for (const auto& s : v) PutString(o, s);
}
bool GetStrings(ByteReader& br, std::size_t limit, std::vector<std::string>* v) {
  std::uint64_t n = br.Varint();
  if (!br.ok() || n > limit) return false;
  v->clear();
  for (std::uint64_t i = 0; i < n && br.ok(); ++i) v->emplace_back(br.String());
  return br.ok();
}
std::uint32_t U32(ByteReader& br) {
  std::uint64_t v = br.Varint();
  if (v > 0xffffffffULL) br.Fail();
  return static_cast<std::uint32_t>(v);
}
}  // namespace

std::string EncodeGroup(const GroupRecord& g) {
  std::string o;
  PutString(&o, g.name);
  PutVarint(&o, g.seq);
  PutVarint(&o, g.resumes);
  PutVarint(&o, g.members.size());
  for (const auto& m : g.members) {
    PutVarint(&o, m.rank);
    PutString(&o, m.platform);
    PutString(&o, m.program);
    PutStrings(&o, m.args);
    PutStrings(&o, m.launch);
    PutString(&o, m.pending_wait);
  }
  return o;
}

Status DecodeGroup(std::string_view data, GroupRecord* g) {
  ByteReader br(data);
  g->name = br.String();
  g->seq = br.Varint();
  g->resumes = br.Varint();
  std::uint64_t n = br.Varint();
  if (!br.ok() || n > data.size()) return Corruption("GROUP section is malformed");
  g->members.clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    MemberRecord m;
    m.rank = U32(br);
    m.platform = br.String();
    m.program = br.String();
    if (!GetStrings(br, data.size(), &m.args) || !GetStrings(br, data.size(), &m.launch))
      return Corruption("GROUP section is malformed");
    m.pending_wait = br.String();
    if (!br.ok()) return Corruption("GROUP section is malformed");
    if (m.rank != i)
      return Corruption("GROUP section lists rank " + std::to_string(m.rank) + " in place " +
                        std::to_string(i));
    g->members.push_back(std::move(m));
  }
  if (!br.empty()) return Corruption("GROUP section has trailing bytes");
  return Status::Ok();
}

std::string EncodeObjects(const std::vector<ObjectRecord>& objs) {
  std::string o;
  PutVarint(&o, objs.size());
  for (const auto& r : objs) {
    o.push_back(static_cast<char>(r.kind));
    PutString(&o, r.name);
    PutVarint(&o, r.creator);
    switch (r.kind) {
      case ObjKind::kSegment:
        PutVarint(&o, r.size);
        PutVarint(&o, r.count);
        PutU64(&o, r.base);
        PutString(&o, r.desc);
        break;
      case ObjKind::kSemaphore:
        PutVarint(&o, r.value);
        break;
      case ObjKind::kBarrier:
        PutVarint(&o, r.parties);
        PutVarint(&o, r.arrived);
        PutVarint(&o, r.generation);
        break;
      case ObjKind::kMutex:
        PutVarint(&o, r.value);
        PutVarint(&o, r.holder);
        break;
    }
  }
  return o;
}

Status DecodeObjects(std::string_view data, std::vector<ObjectRecord>* objs) {
  ByteReader br(data);
  std::uint64_t n = br.Varint();
  if (!br.ok() || n > data.size()) return Corruption("OBJECTS section is malformed");
  objs->clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    ObjectRecord r;
    std::uint8_t k = br.U8();
    if (k < 1 || k > 4) return Corruption("OBJECTS section: unknown object kind " + std::to_string(k));
    r.kind = static_cast<ObjKind>(k);
    r.name = br.String();
    r.creator = U32(br);
    switch (r.kind) {
      case ObjKind::kSegment:
        r.size = br.Varint();
        r.count = br.Varint();
        r.base = br.U64();
        r.desc = br.String();
        break;
      case ObjKind::kSemaphore:
        r.value = U32(br);
        break;
      case ObjKind::kBarrier:
        r.parties = U32(br);
        r.arrived = U32(br);
        r.generation = U32(br);
        break;
      case ObjKind::kMutex:
        r.value = U32(br);
        r.holder = U32(br);
        break;
    }
    if (!br.ok() || !CheckObjectName(r.name).ok()) return Corruption("OBJECTS section is malformed");
    objs->push_back(std::move(r));
  }
  if (!br.empty()) return Corruption("OBJECTS section has trailing bytes");
  return Status::Ok();
}

std::vector<ObjectRecord> SnapshotObjects(ControlBlock* cb) {
  std::vector<ObjectRecord> out;
  TableLock lock(cb);
  for (auto& s : cb->slots) {
    if (s.state.load() != kSlotReady) continue;
    ObjectRecord r;
    r.kind = static_cast<ObjKind>(s.kind);
    r.name = s.name;
    r.creator = s.creator;
    r.size = s.size;
    r.count = s.count;
    r.base = s.base;
    r.desc = s.desc;
    r.value = s.value.load();
    r.holder = s.holder.load();
    r.parties = s.parties;
    std::uint64_t b = s.barrier.load();
    r.arrived = static_cast<std::uint32_t>(b);
    r.generation = static_cast<std::uint32_t>(b >> 32);
    out.push_back(std::move(r));
  }
  return out;
}

void RestoreSlot(Slot* s, const ObjectRecord& r) {
  s->value.store(r.value);
  s->holder.store(r.holder);
  s->parties = r.parties;
  s->barrier.store(static_cast<std::uint64_t>(r.generation) << 32 | r.arrived);
}

std::string MemberSectionName(std::uint32_t rank) {
  return "rank." + std::to_string(rank);
}

}  // namespace ckpt::group
