#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <list>
#include <map>
#include <set>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "group/coordinator_internal.h"
#include "group/event_queue.h"
#include "group/group_image.h"
#include "group/protocol.h"
#include "image/codec.h"
#include "image/reader.h"
#include "image/writer.h"
#include "lib/hold.h"
#include "lib/program_image.h"
#include "lib/registration.h"
#include "platform/process.h"
#include "platform/secure.h"
#include "platform/shm.h"
#include "platform/socket.h"
#include "util/utf8.h"

namespace ckpt::group::internal {

Status Coordinator::CollectReady(std::uint64_t epoch, std::vector<Ready>* ready) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(opt_.timeout_seconds));
  std::vector<bool> got(members_.size(), false);
  std::size_t count = 0;
  while (count < members_.size()) {
    if (int sig = platform::TerminationRequest(); sig != 0)
      return FailedPrecondition("interrupted by " + platform::SignalName(sig));
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
      (void)std::snprintf(secs, sizeof secs, "%g", opt_.timeout_seconds);
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
    if (int sig = platform::TerminationRequest(); sig != 0)
      return FailedPrecondition("interrupted by " + platform::SignalName(sig));
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
                               image::Sink* file) {
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
  meta.Set("ckpt.version", ::ckpt::kVersion);
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
  return w.Finish();
}

Status Coordinator::WriteImageFile(std::uint64_t epoch, std::uint64_t seq, const std::vector<Ready>& ready,
                                   const std::string& final_path) {
  RETURN_IF_ERROR(env_->CreateDirs(opt_.dir));
  env_->RemoveStaleTempFiles(opt_.dir, opt_.name + ".");
  // A new file (no predictable name, never a link), linked as the image
  // only if no other writer took the name meanwhile (docs/groups.md).
  ASSIGN_OR_RETURN(auto tmp,
                   env_->NewTempFile(opt_.dir, lib::ImageFileName(opt_.name, seq), opt_.image_mode));
  RETURN_IF_ERROR(WriteImage(epoch, seq, ready, tmp.get()));
  RETURN_IF_ERROR(tmp->Sync());
  ASSIGN_OR_RETURN(bool committed, tmp->Commit(final_path, /*replace=*/false));
  if (!committed)
    return IoError("another process wrote " + final_path +
                   " at the same time; this group's image was not written");
  return env_->SyncDir(opt_.dir);
}

Status Coordinator::Checkpoint(bool exit_after, std::string* image_path, Channel* holder, bool stream) {
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
  if (st.ok() && stream) {
    // kData messages, then kEnd with the outcome (docs/migration.md).
    ChannelSink to_holder(holder);
    Status wrote = WriteImage(epoch, seq, ready, &to_holder);
    Status ended = to_holder.Finish(wrote);
    st = !wrote.ok() ? wrote : ended.WithContext("streaming the image to the migration");
  } else if (st.ok()) {
    st = WriteImageFile(epoch, seq, ready, final_path);
  }
  if (!st.ok()) {
    Broadcast(Msg::kAbort, {epoch, 0, st.message()});
    std::string prev = last_image_.empty() ? (opt_.resume.empty() ? "none" : opt_.resume) : last_image_;
    return Status(st.code(), "checkpoint " + std::to_string(seq) + " abandoned: " + st.message() +
                                 " (the group runs on; the previous image, " + prev + ", is intact)");
  }
  std::string where = "streamed to the migration";
  if (stream) {
    final_path.clear();  // the group's own images are as they were
  } else {
    where = "written to " + final_path;
    seq_ = seq;
    ++written_;
    last_image_ = final_path;
  }
  *image_path = final_path;
  bool decided_exit = false;
  if (holder != nullptr) {
    // A migration: the members stay parked (no kDone yet) while the image
    // travels; the holder decides whether they exit or go on.
    Say("checkpoint " + std::to_string(seq) + " " + where +
        "; the members are held until the migration decides");
    std::string note;
    decided_exit =
        holder->Send(Msg::kClientReply, EncodeNote({0, 1, final_path})).ok() && AwaitDecision(holder, &note);
    if (!note.empty()) Say(note);
  }
  bool exit_now = exit_after || decided_exit || (opt_.stop_after != 0 && written_ >= opt_.stop_after);
  Broadcast(Msg::kDone, {epoch, static_cast<std::uint8_t>(exit_now ? 1 : 0), final_path});
  if (holder != nullptr)
    holder->Send(Msg::kClientReply, EncodeNote({0, 1, exit_now ? "exit" : "continue"})).IgnoreError();
  if (exit_now) exit_requested_ = true;
  lib::PruneImages(env_, opt_.dir, opt_.name, opt_.keep);
  PublishRegistration().IgnoreError();
  char secs[200];
  (void)std::snprintf(
      secs, sizeof secs,
      " in %.6f s (quiesce %.6f s, communication state %.6f s / %llu bytes, members %.6f s / %llu bytes)",
      std::chrono::duration<double>(Clock::now() - t0).count(), t_quiesce_, t_comm_,
      static_cast<unsigned long long>(comm_bytes_), t_members_,
      static_cast<unsigned long long>(member_bytes_));
  Say("checkpoint " + std::to_string(seq) + " " + where + secs + (exit_now ? "; the members stop" : ""));
  return Status::Ok();
}

bool Coordinator::AwaitDecision(Channel* holder, std::string* note) {
  auto deadline = Clock::now() +
                  std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(hold_timeout_));
  for (;;) {
    if (int sig = platform::TerminationRequest(); sig != 0) {
      *note = "interrupted by " + platform::SignalName(sig) + " while held; no decision";
      return false;
    }
    if (Clock::now() > deadline) {
      *note = "no decision from the migration within the hold timeout (CKPT_HOLD_TIMEOUT); the members go on";
      return false;
    }
    Status st = holder->WaitReadable(100);
    if (st.code() == Code::kTimeout) continue;
    auto m = st.ok() ? holder->Recv(0, 4096) : Result<Message>(st);
    if (!m.ok()) {
      *note = "the migration that held the group went away without a decision; the members go on";
      return false;
    }
    Note n;
    if (m->type == Msg::kClientDecide && DecodeNote(m->payload, &n).ok()) {
      *note = n.flag == 1 ? "the migration is done: the members stop"
                          : "the migration decided: the members go on";
      return n.flag == 1;
    }
  }
}

Status Coordinator::HoldAfterStart() {
  epoch_ = kHoldEpoch;
  std::vector<Ready> ready(members_.size());
  double saved = opt_.timeout_seconds;
  opt_.timeout_seconds = hold_timeout_;  // members may be slow to start (Wine) and to restore
  Status st = CollectReady(kHoldEpoch, &ready);
  opt_.timeout_seconds = saved;
  if (!st.ok()) return st;
  Say("every member has resumed and is held for the migration");
  RETURN_IF_ERROR(lib::RunHandoff(handoff_, env_->ProcessId(), hold_timeout_));
  Broadcast(Msg::kRelease, {kHoldEpoch, 0, ""});
  Say("released by the migration: the members run on");
  return Status::Ok();
}

}  // namespace ckpt::group::internal
