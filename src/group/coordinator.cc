#include "group/coordinator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "group/event_queue.h"
#include "group/group_image.h"
#include "group/protocol.h"
#include "image/codec.h"
#include "image/reader.h"
#include "image/writer.h"
#include "lib/program_image.h"
#include "lib/registration.h"
#include "platform/process.h"
#include "platform/shm.h"
#include "platform/socket.h"
#include "util/utf8.h"

namespace ckpt::group {

namespace {

using Clock = std::chrono::steady_clock;

struct MemberState {
  std::vector<std::string> launch;
  std::unique_ptr<platform::ChildProcess> child;
  std::shared_ptr<Channel> channel;
  Hello hello;
  bool connected = false;
  std::optional<int> exit_status;
};

class Coordinator {
 public:
  Coordinator(platform::Env* env, CoordinatorOptions o) : env_(env), opt_(std::move(o)) {}
  int Run(const std::vector<std::vector<std::string>>& launches);

 private:
  void Say(const std::string& m) const {
    if (!opt_.quiet) std::fprintf(stderr, "ckpt group %s: %s\n", opt_.name.c_str(), m.c_str());
  }
  void Error(const std::string& m) const {
    std::fprintf(stderr, "ckpt: error: group %s: %s\n", opt_.name.c_str(), m.c_str());
  }
  std::string Who(int rank) const;
  Status LoadResumeImage();
  Status PublishRegistration();
  void AcceptLoop();
  void ReadLoop(int rank, std::shared_ptr<Channel> ch);
  void ServeClient(std::shared_ptr<Channel> ch);
  // Handles one event outside a checkpoint.
  void Handle(Event& e);
  bool OnHello(Event& e);
  // Reaps children; returns a message if a member has ended abnormally.
  std::string ReapChildren();
  bool AllExited() const;
  Status Checkpoint(bool exit_after, std::string* image_path);
  Status CollectReady(std::uint64_t epoch, std::vector<Ready>* ready);
  Status ReceivePart(int rank, const Request& req, image::ImageWriter* w, std::string* into);
  Status WriteImage(std::uint64_t epoch, std::uint64_t seq, const std::vector<Ready>& ready,
                    platform::WritableFile* file);
  void Broadcast(Msg type, const Note& n);
  std::uint64_t NextSeq();
  void Shutdown();

  platform::Env* env_;
  CoordinatorOptions opt_;
  std::string gid_;
  std::unique_ptr<platform::Listener> listener_;
  std::vector<MemberState> members_;
  EventQueue events_;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> readers_;
  std::vector<std::shared_ptr<Channel>> clients_waiting_;
  std::vector<std::pair<std::shared_ptr<Channel>, bool>> deferred_clients_;
  bool ask_pending_ = false, ask_exit_ = false;
  std::uint64_t epoch_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t resumes_ = 0;
  std::uint64_t written_ = 0;
  bool exit_requested_ = false;
  std::string last_image_;
  std::string registration_path_;
  std::unique_ptr<image::ImageReader> resume_reader_;
  // Phases of the last checkpoint (seconds, bytes), reported in its progress line.
  double t_quiesce_ = 0, t_comm_ = 0, t_members_ = 0;
  std::uint64_t comm_bytes_ = 0, member_bytes_ = 0;
  std::vector<ObjectRecord> resume_objects_;
};

std::string Coordinator::Who(int rank) const {
  const MemberState& m = members_[static_cast<std::size_t>(rank)];
  std::string prog = "?";
  for (const auto& a : m.launch) {
    std::string b = platform::BaseName(a);
    if (b != "wine" && b != "wine64") {
      prog = b;
      break;
    }
  }
  std::string pid = m.child ? std::to_string(m.child->pid()) : "?";
  return "member " + std::to_string(rank) + " (" + prog + ", pid " + pid + ")";
}

Status Coordinator::LoadResumeImage() {
  ASSIGN_OR_RETURN(auto src, env_->NewRandomAccessFile(opt_.resume));
  ASSIGN_OR_RETURN(resume_reader_, image::ImageReader::Open(std::move(src)));
  if (resume_reader_->header().kind != image::ImageKind::kGroup)
    return InvalidArgument(opt_.resume + " is a " + image::ImageKindName(resume_reader_->header().kind) +
                           " image, not a group image");
  RETURN_IF_ERROR(resume_reader_->VerifyAll());
  const image::SectionInfo* gs = resume_reader_->Find(kSectionGroup);
  const image::SectionInfo* os = resume_reader_->Find(kSectionObjects);
  if (gs == nullptr || os == nullptr) return Corruption(opt_.resume + ": GROUP or OBJECTS section missing");
  ASSIGN_OR_RETURN(std::string gdata, resume_reader_->ReadSection(*gs));
  GroupRecord g;
  RETURN_IF_ERROR(DecodeGroup(gdata, &g).WithContext(opt_.resume));
  ASSIGN_OR_RETURN(std::string odata, resume_reader_->ReadSection(*os));
  RETURN_IF_ERROR(DecodeObjects(odata, &resume_objects_).WithContext(opt_.resume));
  if (g.members.size() != members_.size())
    return InvalidArgument(opt_.resume + " holds " + std::to_string(g.members.size()) + " members, but " +
                           std::to_string(members_.size()) + " commands were given");
  for (std::uint32_t r = 0; r < g.members.size(); ++r) {
    if (resume_reader_->Find(kSectionMember, MemberSectionName(r)) == nullptr)
      return Corruption(opt_.resume + ": no state for member " + std::to_string(r));
  }
  seq_ = g.seq;
  resumes_ = g.resumes + 1;
  return Status::Ok();
}

Status Coordinator::PublishRegistration() {
  RETURN_IF_ERROR(env_->SecureRuntimeDir(env_->RuntimeDir(), /*create=*/true));
  registration_path_ = lib::Registration::PathFor(env_, env_->ProcessId());
  std::string j = "{\"pid\": " + std::to_string(env_->ProcessId()) +
                  ", \"kind\": \"group\", \"group\": " + JsonBytes(opt_.name) + ", \"id\": \"" + gid_ +
                  "\", \"port\": " + std::to_string(listener_->port()) + ", \"dir\": " + JsonBytes(opt_.dir) +
                  ", \"members\": " + std::to_string(members_.size()) +
                  ", \"generation\": " + std::to_string(written_) +
                  ", \"last_image\": " + JsonBytes(last_image_) + "}\n";
  return platform::WriteFileAtomic(env_, registration_path_, j);
}

void Coordinator::AcceptLoop() {
  while (!stop_) {
    auto s = listener_->Accept(100);
    if (!s.ok()) continue;
    auto ch = std::make_shared<Channel>(std::move(s).value());
    auto first = ch->Recv();
    if (!first.ok()) continue;
    Event e;
    e.channel = ch;
    e.msg = std::move(first).value();
    if (e.msg.type == Msg::kHello) {
      e.kind = Event::kHello;
    } else if (e.msg.type == Msg::kClientCheckpoint) {
      e.kind = Event::kClient;
    } else {
      continue;
    }
    events_.Push(std::move(e));
  }
}

void Coordinator::ReadLoop(int rank, std::shared_ptr<Channel> ch) {
  for (;;) {
    auto m = ch->Recv();
    Event e;
    e.rank = rank;
    if (!m.ok()) {
      e.kind = Event::kLost;
      events_.Push(std::move(e));
      return;
    }
    e.msg = std::move(m).value();
    if (e.msg.type == Msg::kBye) {
      ch->Shutdown();
      continue;  // the recv now fails and reports the connection lost
    }
    events_.Push(std::move(e));
  }
}

bool Coordinator::OnHello(Event& e) {
  Hello h;
  if (!DecodeHello(e.msg.payload, &h).ok() || h.group_id != gid_ || h.rank >= members_.size() ||
      members_[h.rank].connected) {
    Say("refused a connection that is not one of this group's members");
    return false;
  }
  MemberState& m = members_[h.rank];
  m.hello = h;
  m.channel = e.channel;
  m.connected = true;
  int rank = static_cast<int>(h.rank);
  readers_.emplace_back([this, rank, ch = e.channel] { ReadLoop(rank, ch); });
  return true;
}

void Coordinator::Handle(Event& e) {
  switch (e.kind) {
    case Event::kHello:
      OnHello(e);
      break;
    case Event::kClient: {
      Note n;
      bool exit = DecodeNote(e.msg.payload, &n).ok() && n.flag != 0;
      deferred_clients_.emplace_back(e.channel, exit);
      break;
    }
    case Event::kLost:
      break;  // the child's exit status tells the story
    case Event::kMessage:
      if (e.msg.type == Msg::kAskCheckpoint) {
        Note n;
        ask_pending_ = true;
        ask_exit_ = ask_exit_ || (DecodeNote(e.msg.payload, &n).ok() && n.flag != 0);
      }
      break;  // late kReady / kEnd of an abandoned checkpoint
  }
}

std::string Coordinator::ReapChildren() {
  for (auto& m : members_) {
    if (!m.exit_status && m.child) m.exit_status = m.child->Poll();
  }
  for (std::size_t r = 0; r < members_.size(); ++r) {
    const auto& st = members_[r].exit_status;
    if (st && *st != 0 && *st != 75)
      return Who(static_cast<int>(r)) + " ended with " + platform::ChildProcess::Describe(*st);
  }
  return "";
}

bool Coordinator::AllExited() const {
  for (const auto& m : members_) {
    if (!m.exit_status) return false;
  }
  return true;
}

void Coordinator::Broadcast(Msg type, const Note& n) {
  std::string p = EncodeNote(n);
  for (auto& m : members_) {
    if (m.connected && !m.exit_status) m.channel->Send(type, p).IgnoreError();
  }
}

Status Coordinator::CollectReady(std::uint64_t epoch, std::vector<Ready>* ready) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(opt_.timeout_seconds));
  std::vector<bool> got(members_.size(), false);
  std::size_t count = 0;
  while (count < members_.size()) {
    ReapChildren();
    for (std::size_t r = 0; r < members_.size(); ++r) {
      if (members_[r].exit_status)
        return IoError(Who(static_cast<int>(r)) + " ended (" +
                       platform::ChildProcess::Describe(*members_[r].exit_status) +
                       ") during the checkpoint");
    }
    if (Clock::now() > deadline) {
      std::string missing;
      for (std::size_t r = 0; r < members_.size(); ++r) {
        if (!got[r]) missing += (missing.empty() ? "" : ", ") + Who(static_cast<int>(r));
      }
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", opt_.timeout_seconds);
      return Timeout(missing + " reached no quiescent point (safepoint or ckpt wait) within " + secs + " s");
    }
    auto e = events_.Pop(std::chrono::milliseconds(20));
    if (!e) continue;
    if (e->kind == Event::kHello) {
      if (OnHello(*e)) {
        Hello h;
        DecodeHello(e->msg.payload, &h).IgnoreError();
        members_[h.rank].channel->Send(Msg::kCheckpoint, EncodeNote({epoch, 0, ""})).IgnoreError();
      }
      continue;
    }
    if (e->kind == Event::kLost) {
      return IoError(Who(e->rank) + " lost its connection during the checkpoint");
    }
    if (e->kind == Event::kMessage && e->msg.type == Msg::kReady) {
      Ready rd;
      if (!DecodeReady(e->msg.payload, &rd).ok() || rd.epoch != epoch) continue;
      auto r = static_cast<std::size_t>(e->rank);
      if (!got[r]) {
        got[r] = true;
        ++count;
        (*ready)[r] = std::move(rd);
      }
      continue;
    }
    Handle(*e);
  }
  return Status::Ok();
}

Status Coordinator::ReceivePart(int rank, const Request& req, image::ImageWriter* w, std::string* into) {
  MemberState& m = members_[static_cast<std::size_t>(rank)];
  RETURN_IF_ERROR(m.channel->Send(Msg::kRequest, EncodeRequest(req)));
  for (;;) {
    auto e = events_.Pop(std::chrono::milliseconds(200));
    if (!e) {
      if (m.child && m.child->Poll()) {
        m.exit_status = m.child->Poll();
        return IoError(Who(rank) + " ended (" + platform::ChildProcess::Describe(*m.exit_status) +
                       ") during the checkpoint");
      }
      continue;
    }
    if (e->kind == Event::kLost && e->rank == rank)
      return IoError(Who(rank) + " lost its connection during the checkpoint");
    if (e->kind != Event::kMessage || e->rank != rank) {
      if (e->kind == Event::kLost)
        return IoError(Who(e->rank) + " lost its connection during the checkpoint");
      Handle(*e);
      continue;
    }
    if (e->msg.type == Msg::kData) {
      if (w != nullptr) RETURN_IF_ERROR(w->Write(e->msg.payload));
      if (into != nullptr) *into += e->msg.payload;
    } else if (e->msg.type == Msg::kEnd) {
      Note n;
      RETURN_IF_ERROR(DecodeNote(e->msg.payload, &n));
      if (n.flag != 1) return IoError(Who(rank) + " could not save its part: " + n.text);
      return Status::Ok();
    }
  }
}

std::uint64_t Coordinator::NextSeq() {
  return std::max(seq_, lib::LatestImageSeq(env_, opt_.dir, opt_.name)) + 1;
}

Status Coordinator::WriteImage(std::uint64_t epoch, std::uint64_t seq, const std::vector<Ready>& ready,
                               platform::WritableFile* file) {
  image::WriterOptions wo;
  wo.codec = *image::ParseCodec(opt_.codec);
  wo.level = opt_.level;
  image::ImageWriter w(file, image::ImageKind::kGroup, wo);
  RETURN_IF_ERROR(w.Begin());

  // Communication state, captured once: the object table from any member.
  auto t_comm0 = Clock::now();
  std::uint64_t pos_comm0 = file->Position();
  std::string objects;
  RETURN_IF_ERROR(ReceivePart(0, {epoch, Part::kObjects, "", seq}, nullptr, &objects));
  std::vector<ObjectRecord> objs;
  RETURN_IF_ERROR(DecodeObjects(objects, &objs));
  for (const auto& old : resume_objects_) {
    bool found =
        std::any_of(objs.begin(), objs.end(), [&](const ObjectRecord& o) { return o.name == old.name; });
    if (!found)
      return FailedPrecondition(std::string(ObjKindName(old.kind)) + " '" + old.name +
                                "' of the resumed image " + opt_.resume +
                                " has not been declared again by any member; declare every group "
                                "object before the first safepoint after a resume");
  }

  lib::Meta meta = lib::ProducerMeta(env_);
  meta.Set("ckpt.version", "0.1.0");
  meta.Set("group.name", opt_.name);
  meta.Set("group.id", gid_);
  meta.Set("group.size", std::to_string(members_.size()));
  meta.Set("image.seq", std::to_string(seq));
  meta.Set("image.codec", opt_.codec);
  if (!opt_.resume.empty()) meta.Set("resumed.from", opt_.resume);
  RETURN_IF_ERROR(
      w.BeginSection(lib::kSectionMeta, "meta", "", image::kSectionRequired, image::CodecId::kNone));
  RETURN_IF_ERROR(w.Write(lib::EncodeMeta(meta)));
  RETURN_IF_ERROR(w.EndSection());

  GroupRecord g;
  g.name = opt_.name;
  g.seq = seq;
  g.resumes = resumes_;
  for (std::size_t r = 0; r < members_.size(); ++r) {
    MemberRecord mr;
    mr.rank = static_cast<std::uint32_t>(r);
    mr.platform = members_[r].hello.platform;
    mr.program = members_[r].hello.program;
    mr.args = members_[r].hello.args;
    mr.launch = members_[r].launch;
    mr.pending_wait = ready[r].pending_wait;
    g.members.push_back(std::move(mr));
  }
  RETURN_IF_ERROR(w.BeginSection(kSectionGroup, "group", "", image::kSectionRequired, image::CodecId::kNone));
  RETURN_IF_ERROR(w.Write(EncodeGroup(g)));
  RETURN_IF_ERROR(w.EndSection());
  RETURN_IF_ERROR(
      w.BeginSection(kSectionObjects, "objects", "", image::kSectionRequired, image::CodecId::kNone));
  RETURN_IF_ERROR(w.Write(objects));
  RETURN_IF_ERROR(w.EndSection());

  for (const auto& o : objs) {
    if (o.kind != ObjKind::kSegment) continue;
    int saver = -1;
    for (std::size_t r = 0; r < ready.size() && saver < 0; ++r) {
      if (std::find(ready[r].segments.begin(), ready[r].segments.end(), o.name) != ready[r].segments.end())
        saver = static_cast<int>(r);
    }
    if (saver < 0)
      return FailedPrecondition("no member has segment '" + o.name + "' mapped; its contents are lost");
    RETURN_IF_ERROR(w.BeginSection(kSectionSegment, o.name, o.desc));
    RETURN_IF_ERROR(ReceivePart(saver, {epoch, Part::kSegment, o.name, seq}, &w, nullptr));
    RETURN_IF_ERROR(w.EndSection());
  }
  t_comm_ = std::chrono::duration<double>(Clock::now() - t_comm0).count();
  comm_bytes_ = file->Position() - pos_comm0;
  auto t_mem0 = Clock::now();
  std::uint64_t pos_mem0 = file->Position();
  for (std::size_t r = 0; r < members_.size(); ++r) {
    // A nested program image: stored raw, it is already framed and checksummed.
    RETURN_IF_ERROR(w.BeginSection(kSectionMember, MemberSectionName(static_cast<std::uint32_t>(r)), "",
                                   image::kSectionRequired, image::CodecId::kNone));
    RETURN_IF_ERROR(ReceivePart(static_cast<int>(r), {epoch, Part::kMember, "", seq}, &w, nullptr));
    RETURN_IF_ERROR(w.EndSection());
  }
  t_members_ = std::chrono::duration<double>(Clock::now() - t_mem0).count();
  member_bytes_ = file->Position() - pos_mem0;
  RETURN_IF_ERROR(w.Finish());
  return file->Sync();
}

Status Coordinator::Checkpoint(bool exit_after, std::string* image_path) {
  for (std::size_t r = 0; r < members_.size(); ++r) {
    if (members_[r].exit_status)
      return FailedPrecondition(Who(static_cast<int>(r)) +
                                " has already ended; a group checkpoint needs every member");
  }
  auto t0 = Clock::now();
  std::uint64_t epoch = ++epoch_;
  Broadcast(Msg::kCheckpoint, {epoch, 0, ""});
  std::vector<Ready> ready(members_.size());
  Status st = CollectReady(epoch, &ready);
  t_quiesce_ = std::chrono::duration<double>(Clock::now() - t0).count();
  std::uint64_t seq = NextSeq();
  std::string final_path = platform::JoinPath(opt_.dir, lib::ImageFileName(opt_.name, seq));
  if (st.ok()) st = env_->CreateDirs(opt_.dir);
  if (st.ok()) env_->RemoveStaleTempFiles(opt_.dir, opt_.name + ".");
  // A new file (no predictable name, never a link), linked as the image
  // only if no other writer took the name meanwhile (docs/groups.md).
  std::unique_ptr<platform::TempFile> tmp;
  if (st.ok()) {
    auto t = env_->NewTempFile(opt_.dir, lib::ImageFileName(opt_.name, seq), opt_.image_mode);
    if (t.ok()) tmp = std::move(t).value();
    st = t.status();
  }
  if (st.ok()) st = WriteImage(epoch, seq, ready, tmp.get());
  if (st.ok()) {
    auto committed = tmp->Commit(final_path, /*replace=*/false);
    st = committed.status();
    if (st.ok() && !*committed)
      st = IoError("another process wrote " + final_path +
                   " at the same time; this group's image was not written");
  }
  if (st.ok()) st = env_->SyncDir(opt_.dir);
  if (!st.ok()) {
    tmp.reset();  // removes the unfinished file
    Broadcast(Msg::kAbort, {epoch, 0, st.message()});
    std::string prev = last_image_.empty() ? (opt_.resume.empty() ? "none" : opt_.resume) : last_image_;
    return Status(st.code(), "checkpoint " + std::to_string(seq) + " abandoned: " + st.message() +
                                 " (the group runs on; the previous image, " + prev + ", is intact)");
  }
  seq_ = seq;
  ++written_;
  last_image_ = final_path;
  *image_path = final_path;
  bool exit_now = exit_after || (opt_.stop_after != 0 && written_ >= opt_.stop_after);
  Broadcast(Msg::kDone, {epoch, static_cast<std::uint8_t>(exit_now ? 1 : 0), final_path});
  if (exit_now) exit_requested_ = true;
  lib::PruneImages(env_, opt_.dir, opt_.name, opt_.keep);
  PublishRegistration().IgnoreError();
  char secs[200];
  std::snprintf(
      secs, sizeof secs,
      " in %.6f s (quiesce %.6f s, communication state %.6f s / %llu bytes, members %.6f s / %llu bytes)",
      std::chrono::duration<double>(Clock::now() - t0).count(), t_quiesce_, t_comm_,
      static_cast<unsigned long long>(comm_bytes_), t_members_,
      static_cast<unsigned long long>(member_bytes_));
  Say("checkpoint " + std::to_string(seq) + " written to " + final_path + secs +
      (exit_now ? "; the members stop" : ""));
  return Status::Ok();
}

void Coordinator::Shutdown() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& m : members_) {
    if (m.child && !m.exit_status) m.child->Kill();
    if (m.channel) m.channel->Shutdown();
  }
  for (auto& t : readers_) t.join();
  for (auto& [ch, ex] : deferred_clients_) {
    ch->Send(Msg::kClientReply, EncodeNote({0, 0, "the group has ended"})).IgnoreError();
  }
  if (!registration_path_.empty()) env_->RemoveFile(registration_path_).IgnoreError();
  platform::SharedSegment::UnlinkAll("ckpt." + gid_ + ".");
}

int Coordinator::Run(const std::vector<std::vector<std::string>>& launches) {
  if (launches.empty()) {
    Error("no members to run");
    return 2;
  }
  if (!image::ParseCodec(opt_.codec) || !image::CodecAvailable(*image::ParseCodec(opt_.codec))) {
    Error("codec '" + opt_.codec + "' is not available (this build has " + image::AvailableCodecs() + ")");
    return 2;
  }
  members_.resize(launches.size());
  for (std::size_t r = 0; r < launches.size(); ++r) members_[r].launch = launches[r];
  gid_ = "g" + std::to_string(env_->ProcessId()) + "x" + std::to_string(env_->NowNanos() % 1000000007);
  if (!opt_.resume.empty()) {
    if (Status st = LoadResumeImage(); !st.ok()) {
      Error("cannot resume from " + opt_.resume + ": " + st.message());
      return st.code() == Code::kCorruption || st.code() == Code::kNotSupported ? 3 : 1;
    }
  }
  auto l = platform::Listener::Loopback();
  if (!l.ok()) {
    Error(l.status().message());
    return 1;
  }
  listener_ = std::move(l).value();
  if (Status st = PublishRegistration(); !st.ok())
    Say("warning: `ckpt checkpoint` will not find the group: " + st.message());
  acceptor_ = std::thread([this] { AcceptLoop(); });
  for (std::size_t r = 0; r < members_.size(); ++r) {
    std::vector<std::string> env = {"CKPT_GROUP_PORT=" + std::to_string(listener_->port()),
                                    "CKPT_GROUP_ID=" + gid_, "CKPT_GROUP_RANK=" + std::to_string(r),
                                    "CKPT_GROUP_SIZE=" + std::to_string(members_.size())};
    if (!opt_.resume.empty()) env.push_back("CKPT_GROUP_RESUME=" + opt_.resume);
    auto c = platform::ChildProcess::Start(members_[r].launch, env);
    if (!c.ok()) {
      Error("cannot start member " + std::to_string(r) + ": " + c.status().message());
      Shutdown();
      return 1;
    }
    members_[r].child = std::move(c).value();
  }
  Say("started " + std::to_string(members_.size()) + " members" +
      (opt_.resume.empty() ? "" : " resuming from " + opt_.resume) + " (group id " + gid_ + ")");

  auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.every_seconds));
  auto next_periodic = Clock::now() + period;
  int status = 0;
  std::string failure;
  while (!AllExited()) {
    if (std::string bad = ReapChildren(); !bad.empty()) {
      failure = bad + "; stopping the group";
      break;
    }
    auto e = events_.Pop(std::chrono::milliseconds(20));
    if (e) Handle(*e);
    bool want = false, want_exit = false;
    std::vector<std::shared_ptr<Channel>> clients;
    if (!deferred_clients_.empty() && !exit_requested_) {
      for (auto& [ch, ex] : deferred_clients_) {
        clients.push_back(ch);
        want_exit = want_exit || ex;
      }
      deferred_clients_.clear();
      want = true;
    }
    if (ask_pending_ && !exit_requested_) {
      want = true;
      want_exit = want_exit || ask_exit_;
      ask_pending_ = ask_exit_ = false;
    }
    bool all_running = std::none_of(members_.begin(), members_.end(),
                                    [](const MemberState& m) { return m.exit_status.has_value(); });
    if (opt_.every_seconds > 0 && Clock::now() >= next_periodic && !exit_requested_ && all_running) {
      want = true;
      next_periodic = Clock::now() + period;
    }
    if (!want) continue;
    std::string path;
    Status st = Checkpoint(want_exit, &path);
    if (!st.ok()) Error(st.message());
    for (auto& ch : clients) {
      ch->Send(Msg::kClientReply,
               EncodeNote({0, static_cast<std::uint8_t>(st.ok() ? 1 : 0), st.ok() ? path : st.message()}))
          .IgnoreError();
    }
    if (!st.ok() && st.code() == Code::kIoError) {
      if (std::string bad = ReapChildren(); !bad.empty()) {
        failure = bad + "; stopping the group";
        break;
      }
    }
  }
  if (!failure.empty()) {
    Error(failure + (last_image_.empty() ? "" : " (last group image: " + last_image_ + ")"));
    status = 1;
  } else {
    bool all75 = true, all0 = true;
    for (const auto& m : members_) {
      all75 = all75 && m.exit_status == 75;
      all0 = all0 && m.exit_status == 0;
    }
    status = all0 ? 0 : (all75 ? 75 : 1);
    if (status == 1) Error("members ended with mixed statuses");
  }
  Shutdown();
  return status;
}

}  // namespace

int RunGroup(platform::Env* env, const CoordinatorOptions& options,
             const std::vector<std::vector<std::string>>& launches) {
  Coordinator c(env, options);
  return c.Run(launches);
}

}  // namespace ckpt::group
