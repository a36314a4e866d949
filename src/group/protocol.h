// Messages between a group's coordinator and its members (and `ckpt
// checkpoint` clients) over a loopback TCP connection. A frame is a 32-bit
// type and a 32-bit payload length, little-endian, then the payload (fields
// encoded with util/bytes.h). docs/groups.md describes the exchange. A
// Channel may be written by one thread while another reads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "image/io.h"
#include "platform/socket.h"
#include "util/status.h"

namespace ckpt::group {

enum class Msg : std::uint32_t {
  kHello = 1,             // member -> coordinator: who I am
  kClientCheckpoint = 2,  // client -> coordinator: checkpoint the group
  kClientReply = 3,       // coordinator -> client: image path or error
  kCheckpoint = 4,        // coordinator -> members: reach a quiescent point (epoch)
  kReady = 5,             // member -> coordinator: parked (epoch, pending wait, segments held)
  kRequest = 6,           // coordinator -> member: stream one part of the image
  kData = 7,              // member -> coordinator: a chunk of that part
  kEnd = 8,               // member -> coordinator: the part is complete (or failed)
  kDone = 9,              // coordinator -> members: image committed; continue or exit
  kAbort = 10,            // coordinator -> members: checkpoint abandoned; continue
  kAskCheckpoint = 11,    // member -> coordinator: a local trigger asked for a checkpoint
  kBye = 12,              // member -> coordinator: leaving; close the connection
  kAuth = 13,             // member/client -> coordinator, first on every connection: the group secret
  kRefused = 14,          // coordinator -> peer: not admitted (why); the connection then closes
  // Since protocol 3 (migration of groups, docs/migration.md):
  kClientHold = 15,  // client -> coordinator: checkpoint, then keep the members parked until kClientDecide
  kClientDecide =
      16,         // client -> coordinator, on the kClientHold connection: flag 1 = members exit, 0 = go on
  kRelease = 17,  // coordinator -> members: the hold after a resume (CKPT_GROUP_HOLD) ends; run on
};

inline constexpr std::uint32_t kMaxPayload = 64u << 20;
inline constexpr std::size_t kDataChunk = 1u << 20;
// Once a message has started to arrive, the rest must follow within this.
inline constexpr int kFrameTimeoutMs = 60000;
// The protocol this build speaks, sent in kAuth. 3: kClientHold,
// kClientDecide, kRelease and CKPT_GROUP_HOLD (a member of version 2 would
// never leave a resume hold, so the versions must not mix).
inline constexpr std::uint32_t kProtocolVersion = 3;
// The per-group secret: this many random bytes (hex in CKPT_GROUP_SECRET and
// in the coordinator's owner-only registration file).
inline constexpr std::size_t kSecretBytes = 32;

struct Message {
  Msg type = Msg::kHello;
  std::string payload;
};

class Channel {
 public:
  explicit Channel(std::unique_ptr<platform::Socket> s) : sock_(std::move(s)) {}
  Status Send(Msg type, std::string_view payload);
  // Receives one message: waits up to `wait_ms` (-1: no limit) for it to
  // start (Timeout if nothing came), then up to `frame_ms` for the rest;
  // a payload over `max_payload` bytes is refused.
  Result<Message> Recv(int wait_ms = -1, std::uint32_t max_payload = kMaxPayload,
                       int frame_ms = kFrameTimeoutMs);
  // Waits up to `timeout_ms` for a message to start arriving (Timeout if none).
  Status WaitReadable(int timeout_ms) { return sock_->WaitReadable(timeout_ms); }
  void Shutdown() { sock_->Shutdown(); }

 private:
  std::unique_ptr<platform::Socket> sock_;
  std::mutex send_mu_;
};

// What a part request asks for.
enum class Part : std::uint8_t { kObjects = 1, kSegment = 2, kMember = 3 };

struct Hello {
  std::uint32_t rank = 0;
  std::int64_t pid = 0;
  std::string group_id;
  std::string platform;
  std::string program;            // the member's own program path
  std::vector<std::string> args;  // its arguments, ckpt options removed
};
// kAuth: the protocol version and the group secret (raw bytes).
struct Auth {
  std::uint32_t version = kProtocolVersion;
  std::string secret;
};
std::string EncodeAuth(const Auth& a);
Status DecodeAuth(std::string_view d, Auth* a);

std::string EncodeHello(const Hello& h);
Status DecodeHello(std::string_view d, Hello* h);

struct Ready {
  std::uint64_t epoch = 0;
  std::string pending_wait;           // "semaphore full" / "barrier sweep" / ""
  std::vector<std::string> segments;  // segments this member has mapped
};
std::string EncodeReady(const Ready& r);
Status DecodeReady(std::string_view d, Ready* r);

struct Request {
  std::uint64_t epoch = 0;
  Part part = Part::kObjects;
  std::string name;       // segment name
  std::uint64_t seq = 0;  // image sequence number (member part)
};
std::string EncodeRequest(const Request& r);
Status DecodeRequest(std::string_view d, Request* r);

// kDone / kAbort / kCheckpoint / kClientReply / kEnd / kAskCheckpoint share
// one shape: epoch, a flag, a text.
struct Note {
  std::uint64_t epoch = 0;
  std::uint8_t flag = 0;  // kDone: exit after; kEnd/kClientReply: 1 = ok
  std::string text;       // image path or error message
};
std::string EncodeNote(const Note& n);
Status DecodeNote(std::string_view d, Note* n);

// A Sink that sends what is appended as kData frames, then kEnd on Finish.
class ChannelSink final : public image::Sink {
 public:
  explicit ChannelSink(Channel* ch) : ch_(ch) { buf_.reserve(kDataChunk); }
  Status Append(const void* data, std::size_t size) override;
  std::uint64_t Position() const override { return pos_; }
  // Flushes and sends kEnd with `result` (OK, or the error that stopped the part).
  Status Finish(const Status& result);

 private:
  Channel* ch_;
  std::string buf_;
  std::uint64_t pos_ = 0;
  Status sticky_;
};

}  // namespace ckpt::group
