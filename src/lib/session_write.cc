// SessionImpl (session_impl.h): checkpoints, holds and the safepoint's slow path.
#include "lib/session_impl.h"

namespace ckpt {
namespace detail {

namespace {

constexpr int kCommitAttempts = 8;  // sequence numbers tried when other writers take them

}  // namespace

Status SessionImpl::Publish(bool exited) {
  lib::RegistrationState r;
  r.generation = written_;
  r.failures = failures_;
  r.last_image = last_image_.empty() ? "" : env_->AbsolutePath(last_image_);
  r.last_error = last_error_;
  r.exited = exited;
  r.held = held_;
  r.cwd = env_->AbsolutePath(".");
  return registration_->Publish(r);
}

Status SessionImpl::WriteImage(std::string* out_path) {
  RETURN_IF_ERROR(env_->CreateDirs(opt_.dir));
  if (!swept_) {  // temporary files left by killed writers: once per run
    env_->RemoveStaleTempFiles(opt_.dir, opt_.name + ".");
    swept_ = true;
  }
  std::uint64_t taken = progress_.seq;
  for (int attempt = 0; attempt < kCommitAttempts; ++attempt) {
    std::uint64_t seq = std::max(taken, lib::LatestImageSeq(env_, opt_.dir, opt_.name)) + 1;
    std::string file = lib::ImageFileName(opt_.name, seq);
    std::string final_path = platform::JoinPath(opt_.dir, file);
    ASSIGN_OR_RETURN(auto tmp, env_->NewTempFile(opt_.dir, file, opt_.image_mode));
    if (!opt_.page_cache) tmp->BypassPageCache();  // written once, read back (if ever) by a resume
    RETURN_IF_ERROR(WriteImage(tmp.get(), seq));
    RETURN_IF_ERROR(tmp->Sync());
    ASSIGN_OR_RETURN(bool committed, tmp->Commit(final_path, /*replace=*/false));
    if (!committed) {
      Say("another process wrote " + final_path + " at the same time; this checkpoint takes the next number");
      taken = seq;
      continue;
    }
    RETURN_IF_ERROR(env_->SyncDir(opt_.dir));
    progress_.seq = seq;
    *out_path = final_path;
    lib::PruneImages(env_, opt_.dir, opt_.name, opt_.keep);
    return Status::Ok();
  }
  return IoError("other processes wrote images of " + opt_.name + " in " + opt_.dir +
                 " under every number tried (up to " + std::to_string(taken) +
                 ") at the same time; this checkpoint was not written");
}

Status SessionImpl::WriteHeldImage(std::string* out_path) {
  std::unique_ptr<lib::StreamSink> stream;
  if (registration_) {
    ASSIGN_OR_RETURN(stream, lib::TakeStreamTicket(env_, registration_->path(), env_->ProcessId()));
  }
  if (!stream) return WriteImage(out_path);
  std::uint64_t seq = std::max(progress_.seq, lib::LatestImageSeq(env_, opt_.dir, opt_.name)) + 1;
  RETURN_IF_ERROR(WriteImage(stream.get(), seq));
  return stream->Finish();
}

Status SessionImpl::WriteImage(image::Sink* sink, std::uint64_t seq) {
  image::WriterOptions wo;
  wo.codec = codec_;
  wo.level = opt_.level;
  image::ImageWriter w(sink, image::ImageKind::kProgram, wo);
  RETURN_IF_ERROR(w.Begin());
  lib::Meta meta = lib::ProducerMeta(env_);
  meta.Set("ckpt.version", kVersion);
  meta.Set("program.name", opt_.name);
  meta.Set("program.path", program_path_);
  std::string args;
  for (std::size_t i = 0; i < program_args_.size(); ++i) {
    if (i) args.push_back('\0');
    args += program_args_[i];
  }
  meta.Set("program.args", args);
  meta.Set("program.argc", std::to_string(program_args_.size()));
  meta.Set("image.seq", std::to_string(seq));
  meta.Set("image.codec", std::string(image::CodecName(codec_)));
  meta.Set("image.solo_group", group_ && !group_->coordinated() ? "1" : "0");
  if (resumed_ || progress_.resumes > 0) meta.Set("resumed.from", resume_path_);
  RETURN_IF_ERROR(
      w.BeginSection(lib::kSectionMeta, "meta", "", image::kSectionRequired, image::CodecId::kNone));
  RETURN_IF_ERROR(w.Write(lib::EncodeMeta(meta)));
  RETURN_IF_ERROR(w.EndSection());
  lib::Progress p = progress_;
  p.seq = seq;
  p.stages_done.assign(stages_done_.begin(), stages_done_.end());
  RETURN_IF_ERROR(
      w.BeginSection(lib::kSectionProgress, "progress", "", image::kSectionRequired, image::CodecId::kNone));
  RETURN_IF_ERROR(w.Write(lib::EncodeProgress(p)));
  RETURN_IF_ERROR(w.EndSection());
  for (const VarEntry& e : vars_) {
    RETURN_IF_ERROR(w.BeginSection(lib::kSectionVar, e.name, e.desc.ToString()));
    lib::SectionWriter sw(&w);
    e.var->Save(sw);
    RETURN_IF_ERROR(sw.Finish().WithContext("variable '" + e.name + "'"));
    RETURN_IF_ERROR(w.EndSection());
  }
  if (group_ && !group_->coordinated()) RETURN_IF_ERROR(group_->WriteSoloSections(&w));
  return w.Finish();
}

void SessionImpl::MakeGroup() {
  GroupHooks h;
  h.pending = pending_;
  h.bit = kBitGroup;
  h.write_image = [this](image::Sink* sink, std::uint64_t seq) {
    CloseRegistration("the first checkpoint");
    if (resume_) FinishResume();
    progress_.seq = seq;
    return WriteImage(sink, seq);
  };
  h.exit_checkpointed = [this] {
    Say("stopping after the group checkpoint, as asked (exit status " + std::to_string(kExitCheckpointed) +
        ")");
    (void)std::fflush(stdout);
    (void)std::fflush(stderr);
    Stop();
    std::exit(kExitCheckpointed);
  };
  h.say = [this](const std::string& m) { Say(m); };
  h.fatal = [this](const std::string& m) { Fatal(m); };
  h.coordinator_gone = [](const std::string& m) {
    (void)std::fflush(stdout);
    (void)std::fprintf(stderr, "ckpt: error: %s; this member stops (exit status %d)\n", m.c_str(),
                       detail::kExitCoordinatorGone);
    (void)std::fflush(stderr);
    std::_Exit(detail::kExitCoordinatorGone);
  };
  if (resume_ && !GroupMember::InGroupEnvironment(env_)) h.solo_resume = resume_path_;
  group_ = std::make_unique<GroupMember>(env_, std::move(h), program_path_, program_args_);
  group_api_.reset(new Group(group_.get()));
}

void SessionImpl::ReleaseSoloGroup() {
  if (group_ && !group_->coordinated()) {
    group_api_.reset();
    group_.reset();
  }
}

Event SessionImpl::DoCheckpoint(bool exit_after, bool asked_outside, bool hold) {
  auto t0 = std::chrono::steady_clock::now();
  std::string path;
  Status st = group_ && group_->locks_held() != 0
                  ? FailedPrecondition(
                        "the program holds a group mutex; it can be checkpointed only "
                        "outside its critical sections")
                  : (hold ? WriteHeldImage(&path) : WriteImage(&path));
  if (!st.ok()) {
    ++failures_;
    last_error_ = st.message();
    Say("checkpoint failed (the previous image is untouched): " + st.message());
    if (registration_) Publish(false).IgnoreError();
    return Event::kFailed;
  }
  ++written_;
  if (!path.empty()) last_image_ = path;
  last_error_.clear();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char buf[64];
  (void)std::snprintf(buf, sizeof buf, " in %.3f s", secs);
  Say(path.empty() ? std::string("checkpoint streamed into the migration's connection") + buf
                   : "checkpoint " + std::to_string(progress_.seq) + " written to " + path + buf);
  if (exit_after) {
    if (registration_ && asked_outside && Publish(true).ok()) registration_->KeepAfterExit();
    Say("stopping after the checkpoint, as asked (exit status " + std::to_string(kExitCheckpointed) + ")");
    (void)std::fflush(stdout);
    (void)std::fflush(stderr);
    Stop();  // removes the registration unless kept above
    ReleaseSoloGroup();
    std::exit(kExitCheckpointed);
  }
  held_ = hold;  // published with the image, in one step
  if (registration_) Publish(false).IgnoreError();
  if (hold) Hold();
  return Event::kCheckpointed;
}

void SessionImpl::Hold() {
  std::string note;
  lib::HoldDecision d = lib::WaitForHoldDecision(env_, pending_, hold_timeout_, &note);
  held_ = false;
  if (d == lib::HoldDecision::kExit) {
    if (registration_ && Publish(true).ok()) registration_->KeepAfterExit();
    Say("stopping after the held checkpoint, as decided (exit status " + std::to_string(kExitCheckpointed) +
        ")");
    (void)std::fflush(stdout);
    (void)std::fflush(stderr);
    Stop();
    ReleaseSoloGroup();
    std::exit(kExitCheckpointed);
  }
  // Not behind --ckpt-quiet: the migration failed somewhere.
  if (!note.empty()) (void)std::fprintf(stderr, "ckpt: %s\n", note.c_str());
  if (registration_) Publish(false).IgnoreError();
}

void SessionImpl::MaybeHandoff() {
  if (!handoff_.requested) return;
  handoff_.requested = false;
  Status st = lib::RunHandoff(handoff_, env_->ProcessId(), hold_timeout_);
  if (st.ok()) return;
  (void)std::fflush(stdout);
  (void)std::fprintf(
      stderr,
      "ckpt: error: migration handoff aborted: %s; this copy stops without running (exit status %d)\n",
      st.message().c_str(), kExitHandoffAborted);
  (void)std::fflush(stderr);
  Stop();  // removes the registration
  ReleaseSoloGroup();
  std::exit(kExitHandoffAborted);
}

Event SessionImpl::Slow() {
  if (RefuseForeignThread("safepoint()")) return Event::kFailed;
  Event result = Event::kNone;
  int p = pending_->load(std::memory_order_relaxed);
  if (p & kBitFirst) {
    pending_->fetch_and(~kBitFirst, std::memory_order_relaxed);
    CloseRegistration("the first safepoint");
  }
  if (p & kBitResumed) {
    pending_->fetch_and(~kBitResumed, std::memory_order_relaxed);
    if (resume_) FinishResume();
    progress_.resumes += 1;
    result = Event::kResumed;
  }
  MaybeHandoff();
  if (p & kBitCount) {
    ++safepoints_;
    if (opt_.at != 0 && safepoints_ == opt_.at) pending_->fetch_or(kBitCheckpoint, std::memory_order_relaxed);
    if (opt_.stop_at != 0 && safepoints_ == opt_.stop_at)
      pending_->fetch_or(kBitCheckpoint | kBitExit, std::memory_order_relaxed);
    if (safepoints_ >= opt_.at && safepoints_ >= opt_.stop_at)
      pending_->fetch_and(~kBitCount, std::memory_order_relaxed);
  }
  if ((p & kBitGroup) && group_) {
    Event e = group_->AtSafepoint();
    if (e != Event::kNone && (e == Event::kFailed || result == Event::kNone)) result = e;
  }
  int req =
      pending_->fetch_and(~(kBitCheckpoint | kBitExit | kBitOutside | kBitHold), std::memory_order_relaxed);
  // A decision means something only to a hold (a release sent after the
  // hold request, before this safepoint, cancels it: Hold() sees it at once).
  if ((req & (kBitRelease | kBitReleaseExit)) && !(req & kBitHold))
    pending_->fetch_and(~(kBitRelease | kBitReleaseExit), std::memory_order_relaxed);
  if ((req & kBitHold) && group_ && group_->coordinated()) {
    ++failures_;
    last_error_ =
        "checkpoint-and-hold refused: this program is a member of a group that a coordinator runs; "
        "a group moves as a whole (ckpt checkpoint GROUP)";
    Say("error: " + last_error_);
    if (registration_) Publish(false).IgnoreError();
    if (result == Event::kNone) result = Event::kFailed;
  } else if ((req & (kBitCheckpoint | kBitExit)) && group_ && group_->coordinated()) {
    // A member's own trigger: the whole group checkpoints, this member included.
    Event e = group_->AskCheckpoint((req & kBitExit) != 0);
    if (e != Event::kNone && (e == Event::kFailed || result == Event::kNone)) result = e;
  } else if ((req & (kBitCheckpoint | kBitExit)) && group_ && group_->locks_held() != 0) {
    // A group of one inside a critical section: served at the next safepoint outside it.
    pending_->fetch_or(req & (kBitCheckpoint | kBitExit | kBitOutside | kBitHold), std::memory_order_relaxed);
  } else if (req & (kBitCheckpoint | kBitExit)) {
    if (resume_) FinishResume();
    // With an exit request among those served, the exit wins over a hold.
    bool exit = (req & kBitExit) != 0;
    Event e = DoCheckpoint(exit, (req & kBitOutside) != 0, (req & kBitHold) != 0 && !exit);
    if (e == Event::kFailed || result == Event::kNone) result = e;
  }
  return result;
}

}  // namespace detail
}  // namespace ckpt
