// The sending side of the migration protocol (docs/migration.md): HELLO and
// the target's ACCEPT, the image as DATA frames, then the two-phase handoff
// — READY (the target's copy is restored and held), COMMIT, DONE (it runs).
// The caller ends the source's copy only after DONE.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "net/stream.h"
#include "net/wire.h"
#include "util/status.h"

namespace ckpt::net {

// Test hooks of the source's side (`ckpt migrate` takes them from
// CKPT_MIGRATE_FAULT: corrupt-data, hold-end:PATH, pause-before-commit).
struct SourceFaults {
  bool corrupt_first_data = false;   // one byte of the first DATA frame changed after its checksum
  std::string hold_end_until;        // the END frame waits until this file exists (at most 120 s)
  bool pause_before_commit = false;  // stop between READY and COMMIT (for an hour)
};

class SourceHandoff {
 public:
  explicit SourceHandoff(Stream* s, SourceFaults faults = {}) : s_(s), sink_(s), faults_(std::move(faults)) {
    if (faults_.corrupt_first_data) sink_.corrupt_next_frame();
  }

  // Sends HELLO; returns the target's ACCEPT, or its refusal as an error.
  Result<nlohmann::json> Hello(const nlohmann::json& hello);
  // Where the image goes (DATA frames).
  FrameSink* sink() { return &sink_; }
  // Sends the file at `path` through sink(); `progress` gets bytes sent.
  Status SendFile(const std::string& path, const std::function<void(std::uint64_t, std::uint64_t)>& progress);
  // A live migration: ROUND before each image (`round`: its number;
  // `final`: the last, restored); sink() positions start again at 0.
  Status BeginRound(int round, bool final);
  // The image is complete: flushes and sends END.
  Status EndImage();
  // Waits for READY (the target restored its copy and holds it).
  Result<nlohmann::json> AwaitReady(int timeout_ms);
  // COMMIT, then waits for DONE: the target's copy runs. An error here is
  // ambiguous only if COMMIT went out: then committed() is true.
  Result<nlohmann::json> Commit(int timeout_ms);
  bool committed() const { return committed_; }
  // After a DONE that says "lazy": waits for FILLED (every page of the
  // target's copy is in). An ERROR from the target: its copy is gone.
  Result<nlohmann::json> AwaitFilled(int timeout_ms);
  // Tells the target the migration is off (best effort).
  void Abort(const std::string& why);

 private:
  // A frame of `want`, or the target's ERROR as a Status.
  Result<nlohmann::json> Await(FrameType want, int timeout_ms, const char* what);
  Stream* s_;
  FrameSink sink_;
  SourceFaults faults_;
  std::uint64_t image_start_ = 0;  // sink_'s position where the current image began
  std::string host_ = "the target";
  bool committed_ = false;
};

// An image inside a stream that carries several (a live migration's
// rounds): its positions count from where it starts.
class ImageSink final : public image::Sink {
 public:
  explicit ImageSink(image::Sink* inner) : inner_(inner), start_(inner->Position()) {}
  Status Append(const void* data, std::size_t size) override { return inner_->Append(data, size); }
  std::uint64_t Position() const override { return inner_->Position() - start_; }

 private:
  image::Sink* inner_;
  std::uint64_t start_;
};

}  // namespace ckpt::net
