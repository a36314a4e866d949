// The migration protocol's frames (docs/migration.md, "Protocol"): a
// 16-byte header — "CM", type, flags, payload length (u32 LE), XXH3-64 of
// the payload as sent (u64 LE) — then the payload. Flag 1: the payload is
// the raw length (u32 LE) and the zstd-compressed bytes (`--compress zstd`). Every frame's checksum is
// verified as it arrives, so a byte changed in transit stops the migration
// before anything runs on the target.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "image/io.h"
#include "net/stream.h"
#include "util/status.h"

namespace ckpt::net {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::size_t kMaxPayload = 8u << 20;
inline constexpr std::size_t kDataChunk = 1u << 20;  // image bytes per DATA frame

enum class FrameType : std::uint8_t {
  kHello = 1,    // source -> target: JSON, what comes and how to run it
  kAccept = 2,   // target -> source: JSON, the target can take it
  kData = 3,     // source -> target: image bytes
  kEnd = 4,      // source -> target: JSON, the image is complete (bytes)
  kReady = 5,    // target -> source: JSON, restored and held (pid, host, output)
  kCommit = 6,   // source -> target: let the target's copy run
  kDone = 7,     // target -> source: JSON, the target's copy runs
  kError = 8,    // either way: JSON {step, message, host}; the migration is over
  kRound = 9,    // source -> target, live migrations: JSON {round, final}, before each image
  kFilled = 10,  // target -> source, after a lazy DONE: JSON, every page is in (the source's copy may end)
  // Post-copy (`--lazy`), after DONE:
  kPageRequest = 11,  // target -> source: JSON {pid, addr, pages} (a fault waits), or {stop: true}
  kPages = 12,        // source -> target: pid (i32 LE), address (u64 LE), then the pages
  kPagesEnd = 13,     // source -> target: JSON {pages, bytes}: every page was sent (or stop asked)
};
std::string FrameTypeName(FrameType t);

struct Frame {
  FrameType type = FrameType::kError;
  std::string payload;
};

inline constexpr std::uint8_t kFlagZstd = 1;

// With `compress`, a payload zstd shrinks is sent compressed (kFlagZstd).
// *wire_bytes (if given) gets the payload bytes that went out.
Status SendFrame(Stream* s, FrameType type, std::string_view payload, bool compress = false,
                 std::uint64_t* wire_bytes = nullptr);
Status SendJson(Stream* s, FrameType type, const nlohmann::json& j);
// The next frame, decompressed; Corruption when its checksum or header is
// wrong. `timeout_ms` as Stream::Read.
Result<Frame> RecvFrame(Stream* s, int timeout_ms = -1);
// The same into `*f`, whose payload buffer is reused (no allocation or
// clearing per frame when frames keep their size, as DATA frames do).
Status RecvFrame(Stream* s, int timeout_ms, Frame* f);
// The payload as a JSON object; Corruption if it is not one.
Result<nlohmann::json> ParseJson(const Frame& f);

// Bytes appended become DATA frames of kDataChunk bytes.
class FrameSink final : public image::Sink {
 public:
  explicit FrameSink(Stream* s) : s_(s) {}
  // zstd-compress DATA frames from now on (where that shrinks them).
  void set_compress(bool on) { compress_ = on; }
  // Test hook: one byte of the next DATA frame is changed after its
  // checksum was computed, as a bad link would.
  void corrupt_next_frame() { corrupt_first_ = true; }
  // Bytes that went out (after compression), headers excluded.
  std::uint64_t sent() const { return sent_; }
  Status Append(const void* data, std::size_t size) override;
  std::uint64_t Position() const override { return pos_; }
  // Sends what is buffered.
  Status Flush();

 private:
  Stream* s_;
  std::string buf_;
  std::uint64_t pos_ = 0;
  std::uint64_t sent_ = 0;
  bool compress_ = false;
  bool corrupt_first_ = false;
};

}  // namespace ckpt::net
