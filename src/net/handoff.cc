#include "net/handoff.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "platform/env.h"

namespace ckpt::net {

Result<nlohmann::json> SourceHandoff::Await(FrameType want, int timeout_ms, const char* what) {
  auto f = RecvFrame(s_, timeout_ms);
  if (!f.ok()) return f.status().WithContext(std::string("waiting for ") + what + " from " + host_);
  if (f->type == FrameType::kError) {
    auto j = ParseJson(*f);
    if (!j.ok()) return j.status();
    std::string host = j->value("host", host_);
    return FailedPrecondition(host + ": " + j->value("step", std::string("?")) + ": " +
                              j->value("message", std::string()));
  }
  if (f->type != want) {
    return Corruption("expected " + FrameTypeName(want) + " from " + host_ + ", got " +
                      FrameTypeName(f->type));
  }
  return ParseJson(*f);
}

Result<nlohmann::json> SourceHandoff::Hello(const nlohmann::json& hello) {
  nlohmann::json h = hello;
  h["version"] = kProtocolVersion;
  RETURN_IF_ERROR(SendJson(s_, FrameType::kHello, h).WithContext("sending to " + s_->Describe()));
  ASSIGN_OR_RETURN(auto a, Await(FrameType::kAccept, 120 * 1000, "the receiver's answer"));
  host_ = a.value("host", host_);
  return a;
}

Status SourceHandoff::SendFile(const std::string& path,
                               const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  platform::Env* env = platform::Env::Default();
  ASSIGN_OR_RETURN(auto src, env->NewRandomAccessFile(path));
  std::uint64_t size = src->Size();
  std::vector<char> buf(kDataChunk);
  for (std::uint64_t off = 0; off < size;) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
    RETURN_IF_ERROR(src->ReadAt(off, n, buf.data()));
    RETURN_IF_ERROR(sink_.Append(buf.data(), n).WithContext("sending the image to " + host_));
    off += n;
    if (progress) progress(off, size);
  }
  return Status::Ok();
}

Status SourceHandoff::BeginRound(int round, bool final) {
  RETURN_IF_ERROR(sink_.Flush().WithContext("sending the image to " + host_));
  image_start_ = sink_.Position();
  nlohmann::json r = {{"round", round}, {"final", final}};
  return SendJson(s_, FrameType::kRound, r).WithContext("sending to " + host_);
}

Status SourceHandoff::EndImage() {
  RETURN_IF_ERROR(sink_.Flush().WithContext("sending the image to " + host_));
  if (!faults_.hold_end_until.empty()) {
    // Test hook: the END frame waits, so a test can see what the target does
    // with an image not yet whole.
    platform::Env* env = platform::Env::Default();
    for (int i = 0; i < 12000 && !env->FileExists(faults_.hold_end_until); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  nlohmann::json e = {{"bytes", sink_.Position() - image_start_}};
  return SendJson(s_, FrameType::kEnd, e).WithContext("sending the image to " + host_);
}

Result<nlohmann::json> SourceHandoff::AwaitReady(int timeout_ms) {
  return Await(FrameType::kReady, timeout_ms, "the restored copy");
}

Result<nlohmann::json> SourceHandoff::Commit(int timeout_ms) {
  // Test hook (pause-before-commit): the source stops between READY and
  // COMMIT, so a test can look at the held copy and end the migration there
  // (kill this process).
  if (faults_.pause_before_commit) {
    std::fprintf(stderr, "ckpt: test fault: paused before COMMIT\n");
    std::fflush(stderr);
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
  RETURN_IF_ERROR(SendFrame(s_, FrameType::kCommit, "").WithContext("committing on " + host_));
  committed_ = true;
  s_->SetInterruptFd(-1);  // past the point of no return
  return Await(FrameType::kDone, timeout_ms, "confirmation that the copy runs");
}

Result<nlohmann::json> SourceHandoff::AwaitFilled(int timeout_ms) {
  return Await(FrameType::kFilled, timeout_ms, "confirmation that every page is in");
}

void SourceHandoff::Abort(const std::string& why) {
  nlohmann::json e = {{"step", "source"}, {"message", why}, {"host", platform::Env::Default()->HostName()}};
  SendJson(s_, FrameType::kError, e).IgnoreError();
}

}  // namespace ckpt::net
