// SessionImpl (session_impl.h): reading an image back (resume, CKPT_RESUME_FOLLOW).
#include "lib/session_impl.h"

namespace ckpt {
namespace detail {

void SessionImpl::OpenResume() {
  if (std::string f = env_->GetEnv(lib::kResumeFollowEnv); !f.empty()) {
    env_->UnsetEnv(lib::kResumeFollowEnv);  // not for the program's children
    auto follow = lib::ParseResumeFollow(f);
    if (!follow) Fatal(std::string(lib::kResumeFollowEnv) + " is malformed: '" + f + "'");
    platform::FollowSpec spec;
    spec.complete_marker = lib::CompleteMarker(follow->path);
    spec.writer_pid = follow->writer;
    auto src = platform::OpenFollowedFile(follow->path, spec);
    Status st =
        src.ok() ? TryOpenSource(std::move(src).value(), /*check_name=*/true, follow->limit) : src.status();
    if (!st.ok()) Fatal("cannot resume from " + follow->path + ": " + st.message());
    return;
  }
  const std::string& path = opt_.resume;
  const bool is_auto = path == "auto";
  std::vector<std::string> candidates;
  if (is_auto || env_->IsDirectory(path)) {
    // Only this program's images (NAME.SEQ.ckpt with NAME exactly its name).
    const std::string& dir = is_auto ? opt_.dir : path;
    if (is_auto && !env_->IsDirectory(dir)) {
      Say("--ckpt-resume auto: no directory " + dir + ", starting fresh");
      return;
    }
    auto list = lib::ListImages(env_, dir, opt_.name);
    if (!list.ok()) Fatal(list.status().message());
    if (list->empty()) {
      std::string what = "no checkpoint images of program '" + opt_.name + "' (" + opt_.name +
                         ".NNNNNN.ckpt) in directory " + dir + OtherPrograms(dir);
      if (!is_auto) Fatal(what);
      Say("--ckpt-resume auto: " + what + ", starting fresh");
      return;
    }
    candidates = *list;
  } else {
    candidates.push_back(path);
  }
  std::vector<std::string> errors;
  for (const std::string& c : candidates) {
    Status st = TryOpen(c);
    if (st.ok()) {
      if (!errors.empty()) Say("warning: skipped unusable newer image(s):" + CapLines(errors));
      return;
    }
    if (candidates.size() == 1) Fatal("cannot resume from " + c + ": " + st.message());
    errors.push_back(st.message());
  }
  Fatal("no usable image among " + std::to_string(candidates.size()) + " candidates:" + CapLines(errors));
}

std::string SessionImpl::OtherPrograms(const std::string& dir) {
  auto all = lib::ListImages(env_, dir, "");
  if (!all.ok()) return "";
  std::set<std::string> names;
  for (const std::string& p : *all) {
    std::string n;
    std::uint64_t seq;
    if (lib::ParseImageFileName(platform::BaseName(p), &n, &seq)) names.insert("'" + n + "'");
  }
  if (names.empty()) return "";
  return " (it holds images of other programs: " +
         CapList(std::vector<std::string>(names.begin(), names.end())) +
         "; --ckpt-name NAME takes those of NAME)";
}

Status SessionImpl::TryOpen(const std::string& path) {
  ASSIGN_OR_RETURN(auto src, env_->NewRandomAccessFile(path));
  return TryOpenSource(std::move(src), /*check_name=*/true);
}

Status SessionImpl::TryOpenSource(std::unique_ptr<image::RandomAccessSource> src, bool check_name,
                                  std::uint64_t streamed_limit) {
  auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(resume_, lib::ResumeImage::Open(std::move(src), streamed_limit, opt_.name, check_name));
  progress_ = resume_->progress();
  stages_done_ = std::set<std::string>(progress_.stages_done.begin(), progress_.stages_done.end());
  resumed_ = true;
  resume_path_ = resume_->path();
  pending_->fetch_or(kBitResumed, std::memory_order_relaxed);
  resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Status::Ok();
}

void SessionImpl::LoadVar(VarEntry& e) {
  auto t0 = std::chrono::steady_clock::now();
  auto found = resume_->Var(e.name);
  if (!found.ok()) Fatal("cannot resume from " + resume_path_ + ": " + found.status().message());
  if (*found == nullptr) {
    Fatal("cannot resume from " + resume_path_ + ": the program declares '" + e.name + "' (" +
          e.desc.ToString() + "), which the image does not contain");
  }
  const image::SectionInfo& s = **found;
  TypeDesc img;
  if (!ParseTypeDesc(s.attrs, &img)) {
    Fatal("cannot resume from " + resume_path_ + ": variable '" + e.name +
          "' has a malformed type descriptor '" + s.attrs + "'");
  }
  std::string why;
  if (!detail::MatchType(&img, e.desc, &why)) {
    Fatal("cannot resume from " + resume_path_ + ": '" + e.name + "' is " +
          state::Mismatch(img, e.desc, why));
  }
  auto stream = resume_->OpenSection(s);
  if (!stream.ok()) Fatal("cannot resume: " + stream.status().message());
  lib::SectionReader r(stream->get());
  e.var->Load(r, img);
  // The section's end marker too, as `ckpt verify` checks it: a damaged
  // image is refused even where the damage is outside the value's bytes.
  r.FinishSection();
  if (!r.ok()) {
    Fatal("cannot resume from " + resume_path_ + ": variable '" + e.name + "' (" + img.ToString() +
          "): " + r.error());
  }
  claimed_.insert(e.name);
  resume_bytes_ += (*stream)->decoded();
  resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void SessionImpl::FinishResume() {
  auto t0 = std::chrono::steady_clock::now();
  auto rest = resume_->Finish(claimed_);
  if (!rest.ok()) Fatal("cannot resume from " + resume_path_ + ": " + rest.status().message());
  resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::vector<std::string>& unclaimed = *rest;
  if (!unclaimed.empty()) {
    Fatal("cannot resume from " + resume_path_ + ": the image holds " + CapList(unclaimed) +
          " but the program " + (unclaimed.size() == 1 ? "never declared it" : "declared none of them") +
          " before its first safepoint");
  }
  const bool streamed = resume_->streamed();
  resume_.reset();
  char buf[192];
  (void)std::snprintf(buf, sizeof buf, " (checkpoint %llu): %zu variables, %.1f MiB, read in %.3f s%s",
                      static_cast<unsigned long long>(progress_.seq), claimed_.size(),
                      static_cast<double>(resume_bytes_) / (1 << 20), resume_seconds_,
                      streamed ? " as it arrived" : "");
  Say("resumed from " + resume_path_ + buf);
}

}  // namespace detail
}  // namespace ckpt
