#include "group/member.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "lib/program_image.h"
#include "lib/section_io.h"
#include "platform/secure.h"
#include "state/compat.h"

namespace ckpt::detail {

using group::Msg;
using group::ObjKind;

namespace {

constexpr int kReadyWaitMs = 60000;  // a segment's creator fills it from the image meanwhile

std::string Hex(std::uint64_t v) {
  char b[32];
  (void)std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

bool GroupMember::InGroupEnvironment(platform::Env* env) {
  return !env->GetEnv("CKPT_GROUP_PORT").empty();
}

GroupMember::GroupMember(platform::Env* env, GroupHooks hooks, std::string program,
                         std::vector<std::string> args)
    : env_(env), hooks_(std::move(hooks)), program_(std::move(program)), args_(std::move(args)) {
  if (InGroupEnvironment(env_)) {
    Join();
  } else {
    gid_ = "solo" + std::to_string(env_->ProcessId()) + "x" + std::to_string(env_->NowNanos() % 1000000007);
    if (!hooks_.solo_resume.empty()) OpenResumeImage(hooks_.solo_resume, image::ImageKind::kProgram);
  }
  OpenControl();
}

void GroupMember::Fatal(const std::string& m) {
  // A group of one owns its objects: remove them before the process ends.
  if (!channel_) platform::SharedSegment::UnlinkAll("ckpt." + gid_ + ".");
  hooks_.fatal(m);
  std::abort();
}

GroupMember::~GroupMember() {
  closing_ = true;
  if (channel_) {
    // The coordinator closes its end, which ends our listener's recv (a
    // shutdown from this side does not wake a blocked recv under Wine).
    if (!lost_) channel_->Send(Msg::kBye, "").IgnoreError();
    channel_->Shutdown();
  }
  if (listener_.joinable()) listener_.join();
  syncs_.clear();
  segments_.clear();
  bool last = cb_ != nullptr && cb_->attached.fetch_sub(1) == 1;
  control_seg_.reset();
  if (last) platform::SharedSegment::UnlinkAll("ckpt." + gid_ + ".");
}

void GroupMember::Join() {
  auto num = [&](const char* var) -> std::uint64_t {
    std::string v = env_->GetEnv(var);
    char* end = nullptr;
    unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') Fatal(std::string("bad or missing ") + var + " ('" + v + "')");
    return x;
  };
  port_ = static_cast<int>(num("CKPT_GROUP_PORT"));
  rank_ = static_cast<std::uint32_t>(num("CKPT_GROUP_RANK"));
  size_ = static_cast<std::uint32_t>(num("CKPT_GROUP_SIZE"));
  gid_ = env_->GetEnv("CKPT_GROUP_ID");
  if (gid_.empty() || rank_ >= size_) Fatal("CKPT_GROUP_ID missing or CKPT_GROUP_RANK out of range");
  group::Auth auth;
  if (!platform::HexDecode(env_->GetEnv("CKPT_GROUP_SECRET"), &auth.secret) ||
      auth.secret.size() != group::kSecretBytes)
    Fatal("CKPT_GROUP_SECRET is missing or malformed (members are started by `ckpt run` or `ckpt resume`)");
  auto sock = platform::ConnectLoopback(port_);
  if (!sock.ok()) Fatal("cannot reach the group coordinator: " + sock.status().message());
  channel_ = std::make_unique<group::Channel>(std::move(sock).value());
  if (Status st = channel_->Send(Msg::kAuth, group::EncodeAuth(auth)); !st.ok())
    Fatal("cannot reach the group coordinator: " + st.message());
  group::Hello h;
  h.rank = rank_;
  h.pid = env_->ProcessId();
  h.group_id = gid_;
  h.platform = lib::PlatformTag();
  h.program = program_;
  h.args = args_;
  Status st = channel_->Send(Msg::kHello, group::EncodeHello(h));
  if (!st.ok()) Fatal("cannot reach the group coordinator: " + st.message());
  if (std::string r = env_->GetEnv("CKPT_GROUP_RESUME"); !r.empty())
    OpenResumeImage(r, image::ImageKind::kGroup);
  // A resume held for a migration (docs/migration.md, "Groups"): the
  // checkpoint request of the hold epoch is pending from the start, so this
  // member parks at its first quiescent point, before any later work, until
  // the coordinator releases it (kRelease).
  if (std::string e = env_->GetEnv("CKPT_GROUP_HOLD"); !e.empty()) {
    std::uint64_t epoch = num("CKPT_GROUP_HOLD");
    if (epoch == 0) Fatal("bad CKPT_GROUP_HOLD ('" + e + "')");
    requested_epoch_ = epoch;
    hooks_.pending->fetch_or(hooks_.bit);
  }
  listener_ = std::thread([this] { Listen(); });
}

void GroupMember::OpenControl() {
  std::string name = ObjectName("ctl");
  auto seg = platform::SharedSegment::Create(name, sizeof(group::ControlBlock), 0);
  bool created = seg.ok();
  if (!created) seg = platform::SharedSegment::Open(name, sizeof(group::ControlBlock), 0);
  if (!seg.ok()) Fatal("cannot open the group's control block: " + seg.status().message());
  control_seg_ = std::move(seg).value();
  cb_ = static_cast<group::ControlBlock*>(control_seg_->data());
  if (created) {
    group::InitControl(cb_, size_);
  } else if (Status st = group::AwaitControl(cb_, 10000); !st.ok()) {
    Fatal(st.message());
  }
  cb_->attached.fetch_add(1);
}

void GroupMember::OpenResumeImage(const std::string& path, image::ImageKind kind) {
  resume_path_ = path;
  auto fail = [&](const Status& st) {
    Fatal("cannot resume the group" + std::string(kind == image::ImageKind::kGroup ? "" : "'s objects") +
          " from " + path + ": " + st.message());
  };
  auto src = env_->NewRandomAccessFile(path);
  if (!src.ok()) fail(src.status());
  auto r = image::ImageReader::Open(std::move(src).value());
  if (!r.ok()) fail(r.status());
  reader_ = std::move(r).value();
  if (reader_->header().kind != kind)
    fail(InvalidArgument(std::string("it is a ") + image::ImageKindName(reader_->header().kind) + " image"));
  const image::SectionInfo* objs = reader_->Find(group::kSectionObjects);
  if (objs == nullptr) fail(Corruption("OBJECTS section missing"));
  auto data = reader_->ReadSection(*objs);
  if (!data.ok()) fail(data.status());
  if (Status st = group::DecodeObjects(*data, &image_objects_); !st.ok()) fail(st);
}

Result<std::unique_ptr<image::RandomAccessSource>> GroupMember::TakeMemberImage() {
  std::string name = group::MemberSectionName(rank_);
  const image::SectionInfo* s = reader_->Find(group::kSectionMember, name);
  if (s == nullptr) return NotFound(resume_path_ + " holds no state for member " + name);
  ASSIGN_OR_RETURN(std::string data, reader_->ReadSection(*s));
  member_taken_ = true;
  MaybeCloseResumeImage();
  return std::unique_ptr<image::RandomAccessSource>(
      new image::StringSource(std::move(data), resume_path_ + " [" + name + "]"));
}

// The resume image is needed until this member's own state is out of it and
// every object of the image is in the group's table (each restored from it
// by the member that created it); then it is closed, so that nothing holds
// the image while the group runs: a migration's spool entry on Windows
// cannot be removed while a file in it is open.
void GroupMember::MaybeCloseResumeImage() {
  if (!reader_ || (coordinated() && !member_taken_)) return;
  {
    group::TableLock lock(cb_);
    for (const auto& o : image_objects_) {
      if (group::FindSlot(cb_, o.name) == nullptr) return;
    }
  }
  reader_.reset();
}

const group::ObjectRecord* GroupMember::ImageObject(std::string_view name) const {
  for (const auto& o : image_objects_) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

// --- objects -------------------------------------------------------------------

SyncHandle* GroupMember::OpenSync(std::string_view name, ObjKind kind, std::uint32_t arg) {
  if (Status st = group::CheckObjectName(name); !st.ok()) Fatal(st.message());
  if (auto it = syncs_.find(name); it != syncs_.end()) {
    if (it->second->kind != kind)
      Fatal("'" + std::string(name) + "' is a " + group::ObjKindName(it->second->kind) + ", not a " +
            group::ObjKindName(kind));
    return it->second.get();
  }
  group::Slot* slot = nullptr;
  {
    group::TableLock lock(cb_);
    slot = group::FindSlot(cb_, name);
    if (slot == nullptr) {
      auto claimed = group::ClaimSlot(cb_, name, kind, rank_);
      if (!claimed.ok()) Fatal(claimed.status().message());
      slot = *claimed;
      slot->parties = kind == ObjKind::kBarrier ? (arg == 0 ? size_ : arg) : 0;
      slot->value.store(kind == ObjKind::kMutex ? 1 : (kind == ObjKind::kSemaphore ? arg : 0));
      if (const group::ObjectRecord* rec = ImageObject(name)) {
        if (rec->kind != kind)
          Fatal("cannot resume: '" + std::string(name) + "' is a " + group::ObjKindName(rec->kind) +
                " in the image " + resume_path_ + ", the program declares a " + group::ObjKindName(kind));
        group::RestoreSlot(slot, *rec);
      }
      slot->state.store(group::kSlotReady);
    } else if (slot->kind != static_cast<std::uint32_t>(kind)) {
      Fatal("group object '" + std::string(name) + "' is a " +
            group::ObjKindName(static_cast<ObjKind>(slot->kind)) + ", this member declares a " +
            group::ObjKindName(kind));
    }
  }
  auto h = std::make_unique<SyncHandle>();
  h->member = this;
  h->slot = slot;
  h->kind = kind;
  h->name = std::string(name);
  auto q =
      platform::WaitQueue::Open(ObjectName("q" + std::to_string(group::SlotIndex(cb_, slot))), &slot->seq);
  if (!q.ok()) Fatal(q.status().message());
  h->queue = std::move(q).value();
  if (kind == ObjKind::kSemaphore) h->sem.reset(new Semaphore(h.get()));
  if (kind == ObjKind::kBarrier) h->barrier.reset(new Barrier(h.get()));
  if (kind == ObjKind::kMutex) h->mutex.reset(new Mutex(h.get()));
  SyncHandle* raw = h.get();
  syncs_.emplace(std::string(name), std::move(h));
  MaybeCloseResumeImage();
  return raw;
}

void* GroupMember::OpenSegment(std::string_view name, std::size_t count, std::size_t elem_size,
                               std::size_t align, std::unique_ptr<ElemCodec> codec, std::uintptr_t base) {
  if (Status st = group::CheckObjectName(name); !st.ok()) Fatal(st.message());
  if (segments_.count(name)) Fatal("segment '" + std::string(name) + "' is declared twice by this member");
  if (count == 0) Fatal("segment '" + std::string(name) + "' needs a size");
  if (base % (align == 0 ? 1 : align) != 0) Fatal("segment '" + std::string(name) + "': base is misaligned");
  std::size_t bytes = count * elem_size;
  std::string desc = codec ? codec->Describe().ToString() : "";
  if (desc.size() > group::kDescMax) Fatal("segment '" + std::string(name) + "': element type is too long");
  auto h = std::make_unique<SegmentHandle>();
  h->name = std::string(name);
  h->codec = std::move(codec);
  h->count = h->codec ? count : bytes;
  group::Slot* slot = nullptr;
  bool create = false;
  {
    group::TableLock lock(cb_);
    slot = group::FindSlot(cb_, name);
    if (slot == nullptr) {
      auto claimed = group::ClaimSlot(cb_, name, ObjKind::kSegment, rank_);
      if (!claimed.ok()) Fatal(claimed.status().message());
      slot = *claimed;
      slot->size = bytes;
      slot->count = h->codec ? count : 0;
      slot->base = base;
      std::memcpy(slot->desc, desc.data(), desc.size());
      create = true;  // stays kSlotCreating until the contents are in place
    } else if (slot->kind != static_cast<std::uint32_t>(ObjKind::kSegment) || slot->size != bytes ||
               desc != slot->desc) {
      Fatal("segment '" + std::string(name) + "' (" + std::to_string(bytes) + " bytes" +
            (desc.empty() ? "" : ", " + desc) + ") does not match the group's object of that name (" +
            std::to_string(slot->size) + " bytes" + (slot->desc[0] ? std::string(", ") + slot->desc : "") +
            ")");
    }
  }
  auto qr =
      platform::WaitQueue::Open(ObjectName("q" + std::to_string(group::SlotIndex(cb_, slot))), &slot->seq);
  if (!qr.ok()) Fatal(qr.status().message());
  std::unique_ptr<platform::WaitQueue> q = std::move(qr).value();
  std::string shm = ObjectName("s." + std::string(name));
  if (create) {
    auto seg = platform::SharedSegment::Create(shm, bytes, base);
    Status st = seg.ok() ? Status::Ok() : seg.status();
    if (st.ok()) {
      h->seg = std::move(seg).value();
      if (const group::ObjectRecord* rec = ImageObject(name)) st = RestoreSegment(*h, *rec);
    }
    slot->state.store(st.ok() ? group::kSlotReady : group::kSlotFailed);
    group::WakeAll(slot, q.get());
    if (!st.ok()) Fatal("segment '" + std::string(name) + "': " + st.message());
  } else {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadyWaitMs);
    for (;;) {
      std::uint32_t seq = slot->seq.load();
      std::uint32_t state = slot->state.load();
      if (state == group::kSlotReady) break;
      if (state == group::kSlotFailed)
        Fatal("segment '" + std::string(name) + "' failed in the member that created it");
      if (std::chrono::steady_clock::now() > deadline)
        Fatal("segment '" + std::string(name) + "' was not ready within " +
              std::to_string(kReadyWaitMs / 1000) + " s");
      slot->waiters.fetch_add(1);
      if (slot->state.load() == group::kSlotCreating) q->Wait(seq, 100);
      slot->waiters.fetch_sub(1);
    }
    auto seg = platform::SharedSegment::Open(shm, bytes, base);
    if (!seg.ok()) Fatal("segment '" + std::string(name) + "': " + seg.status().message());
    h->seg = std::move(seg).value();
  }
  void* data = h->seg->data();
  segments_.emplace(std::string(name), std::move(h));
  MaybeCloseResumeImage();
  return data;
}

Status GroupMember::RestoreSegment(SegmentHandle& h, const group::ObjectRecord& rec) {
  std::string where = "cannot resume from " + resume_path_ + ": segment '" + h.name + "'";
  if (rec.kind != ObjKind::kSegment)
    return FailedPrecondition(where + " is a " + group::ObjKindName(rec.kind) + " in the image");
  if (h.codec == nullptr && !rec.desc.empty())
    return FailedPrecondition(where + " holds " + rec.desc +
                              " elements in the image; declare it with array<T>");
  if (h.codec != nullptr && rec.desc.empty())
    return FailedPrecondition(where + " holds bytes in the image; declare it with segment()");
  if (rec.base != 0 && h.seg->data() != reinterpret_cast<void*>(rec.base))
    return FailedPrecondition(where + " was mapped at " + Hex(rec.base) +
                              " and asks for it again; map it there");
  const image::SectionInfo* s = reader_->Find(group::kSectionSegment, h.name);
  if (s == nullptr) return Corruption(where + ": its SEGMENT section is missing");
  ASSIGN_OR_RETURN(auto stream, reader_->OpenSection(*s));
  if (h.codec == nullptr) {
    if (rec.size != h.seg->size() || s->raw_size != h.seg->size())
      return FailedPrecondition(where + " has " + std::to_string(s->raw_size) +
                                " bytes in the image, the program asks for " + std::to_string(h.seg->size()));
    return stream->Read(h.seg->data(), h.seg->size());
  }
  TypeDesc img;
  if (!ParseTypeDesc(rec.desc, &img))
    return Corruption(where + ": malformed element type '" + rec.desc + "'");
  TypeDesc prog = h.codec->Describe();
  std::string why;
  if (!detail::MatchType(&img, prog, &why))
    return FailedPrecondition(where + " holds " + state::Mismatch(img, prog, why));
  if (rec.count != h.count)
    return FailedPrecondition(where + " has " + std::to_string(rec.count) +
                              " elements in the image, the program asks for " + std::to_string(h.count));
  lib::SectionReader r(stream.get());
  h.codec->Load(r, h.seg->data(), h.count, img);
  r.FinishSection();
  if (!r.ok()) return Corruption(where + ": " + r.error());
  return Status::Ok();
}

// --- checkpoint protocol --------------------------------------------------------

void GroupMember::CoordinatorGone(const std::string& why) {
  lost_ = true;
  // The last member out removes the group's objects (the coordinator may have been killed).
  if (cb_ != nullptr && cb_->attached.fetch_sub(1) == 1)
    platform::SharedSegment::UnlinkAll("ckpt." + gid_ + ".");
  hooks_.coordinator_gone(why);
  std::abort();
}

void GroupMember::Listen() {
  for (;;) {
    auto m = channel_->Recv();
    if (!m.ok()) {
      // A member never outlives its coordinator: without it, no group
      // checkpoint can include this member again.
      if (!closing_) CoordinatorGone("the group coordinator is gone (" + m.status().message() + ")");
      return;
    }
    if (m->type == Msg::kRefused) {
      group::Note n;
      if (!group::DecodeNote(m->payload, &n).ok()) n.text = "no reason given";
      CoordinatorGone("the group coordinator did not admit this member: " + n.text);
    }
    if (m->type == Msg::kCheckpoint) {
      group::Note n;
      if (!group::DecodeNote(m->payload, &n).ok()) continue;
      requested_epoch_ = n.epoch;
      Interrupt();
      continue;
    }
    std::lock_guard<std::mutex> lk(inbox_mu_);
    inbox_.push_back(std::move(m).value());
    inbox_cv_.notify_all();
  }
}

void GroupMember::Interrupt() {
  hooks_.pending->fetch_or(hooks_.bit);
  group::Slot* s = blocked_slot_.load();
  platform::WaitQueue* q = blocked_queue_.load();
  if (s != nullptr && q != nullptr) group::WakeAll(s, q);
}

bool GroupMember::Interrupted() {
  return (hooks_.pending->load() & hooks_.bit) != 0 && locks_held_ == 0;
}

void GroupMember::SetBlocked(group::Slot* slot, platform::WaitQueue* q) {
  if (slot != nullptr) {
    blocked_queue_.store(q);
    blocked_slot_.store(slot);
  } else {
    blocked_slot_.store(nullptr);
    blocked_queue_.store(nullptr);
  }
}

group::Message GroupMember::NextMessage() {
  std::unique_lock<std::mutex> lk(inbox_mu_);
  inbox_cv_.wait(lk, [this] { return !inbox_.empty(); });
  group::Message m = std::move(inbox_.front());
  inbox_.pop_front();
  return m;
}

Event GroupMember::AtSafepoint() {
  if (lost_) {
    hooks_.pending->fetch_and(~hooks_.bit);
    if (!lost_reported_) hooks_.say("warning: the group coordinator is gone; no more group checkpoints");
    lost_reported_ = true;
    return Event::kNone;
  }
  if (!Interrupted()) return Event::kNone;  // holds a mutex: the next safepoint outside serves it
  return Quiesce("");
}

Event GroupMember::AskCheckpoint(bool exit_after) {
  if (!channel_ || lost_) return Event::kNone;
  if (!channel_->Send(Msg::kAskCheckpoint, group::EncodeNote({0, static_cast<std::uint8_t>(exit_after), ""}))
           .ok()) {
    return Event::kFailed;
  }
  if (locks_held_ != 0) return Event::kNone;  // served at the next safepoint outside the mutex
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!lost_ && (hooks_.pending->load() & hooks_.bit) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      hooks_.say("warning: asked the coordinator for a group checkpoint; no request came within 30 s");
      return Event::kNone;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return AtSafepoint();
}

Event GroupMember::Quiesce(const std::string& pending_wait) {
  auto clear = [this] { hooks_.pending->fetch_and(~hooks_.bit); };
  if (!channel_ || lost_) {
    clear();
    return Event::kNone;
  }
  MaybeCloseResumeImage();  // the objects other members declared meanwhile
  std::uint64_t epoch = requested_epoch_.load();
  group::Ready ready;
  ready.epoch = epoch;
  ready.pending_wait = pending_wait;
  for (const auto& [n, h] : segments_) ready.segments.push_back(n);
  if (Status st = channel_->Send(Msg::kReady, group::EncodeReady(ready)); !st.ok()) {
    clear();
    return Event::kFailed;
  }
  for (;;) {
    group::Message m = NextMessage();
    if (m.type == Msg::kRequest) {
      group::Request req;
      if (!group::DecodeRequest(m.payload, &req).ok() || req.epoch != epoch) continue;
      if (Status st = ServePart(req); !st.ok()) {
        hooks_.say("group checkpoint: cannot send " + st.message());
      }
      continue;
    }
    group::Note n;
    if (!group::DecodeNote(m.payload, &n).ok()) continue;
    if (m.type == Msg::kAbort && (n.epoch == epoch || n.flag == 2)) {
      clear();
      hooks_.say("group checkpoint abandoned: " + n.text);
      return Event::kFailed;
    }
    if (m.type == Msg::kRelease && n.epoch == epoch) {
      clear();  // the hold after a resume is over: run on, nothing was written
      return Event::kNone;
    }
    if (m.type == Msg::kDone && n.epoch == epoch) {
      clear();
      if (n.flag != 0) {
        closing_ = true;  // the coordinator may close first: that is no loss now
        hooks_.exit_checkpointed();
      }
      return Event::kCheckpointed;
    }
  }
}

Status GroupMember::ServePart(const group::Request& req) {
  group::ChannelSink sink(channel_.get());
  Status st;
  switch (req.part) {
    case group::Part::kObjects: {
      std::string data = group::EncodeObjects(group::SnapshotObjects(cb_));
      st = sink.Append(data.data(), data.size());
      break;
    }
    case group::Part::kSegment: {
      auto it = segments_.find(req.name);
      st = it == segments_.end()
               ? NotFound("member " + std::to_string(rank_) + " has no segment '" + req.name + "'")
               : StreamSegment(*it->second, &sink);
      break;
    }
    case group::Part::kMember:
      st = hooks_.write_image(&sink, req.seq);
      break;
    default:
      st = InvalidArgument("unknown part requested");
  }
  return sink.Finish(st);
}

Status GroupMember::WriteSoloSections(image::ImageWriter* w) {
  std::vector<group::ObjectRecord> objs = group::SnapshotObjects(cb_);
  for (const auto& old : image_objects_) {
    bool found = std::any_of(objs.begin(), objs.end(),
                             [&](const group::ObjectRecord& o) { return o.name == old.name; });
    if (!found)
      return FailedPrecondition(std::string(group::ObjKindName(old.kind)) + " '" + old.name +
                                "' of the resumed image " + resume_path_ +
                                " has not been declared again; declare every group object before the "
                                "first safepoint after a resume");
  }
  if (objs.empty()) return Status::Ok();
  RETURN_IF_ERROR(
      w->BeginSection(group::kSectionObjects, "objects", "", image::kSectionRequired, image::CodecId::kNone));
  RETURN_IF_ERROR(w->Write(group::EncodeObjects(objs)));
  RETURN_IF_ERROR(w->EndSection());
  for (const auto& o : objs) {
    if (o.kind != ObjKind::kSegment) continue;
    auto it = segments_.find(o.name);
    if (it == segments_.end()) return Internal("segment '" + o.name + "' is in the table but not mapped");
    const SegmentHandle& h = *it->second;
    RETURN_IF_ERROR(w->BeginSection(group::kSectionSegment, o.name, o.desc));
    if (h.codec == nullptr) {
      RETURN_IF_ERROR(w->Write(h.seg->data(), h.seg->size()));
    } else {
      lib::SectionWriter sw(w);
      h.codec->Save(sw, h.seg->data(), h.count);
      RETURN_IF_ERROR(sw.Finish().WithContext("segment '" + o.name + "'"));
    }
    RETURN_IF_ERROR(w->EndSection());
  }
  return Status::Ok();
}

Status GroupMember::StreamSegment(const SegmentHandle& h, image::Sink* sink) {
  if (h.codec == nullptr) return sink->Append(h.seg->data(), h.seg->size());
  lib::SectionWriter w(sink);
  h.codec->Save(w, h.seg->data(), h.count);
  return w.Finish();
}

}  // namespace ckpt::detail
