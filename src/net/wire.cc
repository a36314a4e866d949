#include "net/wire.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "image/checksum.h"
#include "image/codec.h"
#include "platform/env.h"
#include "util/bytes.h"

namespace ckpt::net {

namespace {

constexpr std::size_t kHeaderSize = 16;

// SendFrame, with `corrupt` (a test hook, FrameSink::corrupt_first): one
// byte of the payload changed after its checksum was computed, as a bad
// link would.
Status SendFrameImpl(Stream* s, FrameType type, std::string_view payload, bool compress,
                     std::uint64_t* wire_bytes, bool corrupt);

}  // namespace

std::string FrameTypeName(FrameType t) {
  switch (t) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kAccept:
      return "ACCEPT";
    case FrameType::kData:
      return "DATA";
    case FrameType::kEnd:
      return "END";
    case FrameType::kReady:
      return "READY";
    case FrameType::kCommit:
      return "COMMIT";
    case FrameType::kDone:
      return "DONE";
    case FrameType::kError:
      return "ERROR";
    case FrameType::kRound:
      return "ROUND";
    case FrameType::kFilled:
      return "FILLED";
    case FrameType::kPageRequest:
      return "PAGE-REQUEST";
    case FrameType::kPages:
      return "PAGES";
    case FrameType::kPagesEnd:
      return "PAGES-END";
  }
  return "frame type " + std::to_string(static_cast<int>(t));
}

Status SendFrame(Stream* s, FrameType type, std::string_view payload, bool compress,
                 std::uint64_t* wire_bytes) {
  return SendFrameImpl(s, type, payload, compress, wire_bytes, false);
}

namespace {

Status SendFrameImpl(Stream* s, FrameType type, std::string_view payload, bool compress,
                     std::uint64_t* wire_bytes, bool corrupt) {
  if (payload.size() > kMaxPayload) return InvalidArgument("frame payload too large");
  std::uint8_t flags = 0;
  std::string packed;
  if (compress && !payload.empty()) {
    std::vector<unsigned char> z;
    RETURN_IF_ERROR(image::Compress(image::CodecId::kZstd, 1, payload.data(), payload.size(), &z));
    if (!z.empty() && z.size() + 4 < payload.size()) {
      PutU32(&packed, static_cast<std::uint32_t>(payload.size()));
      packed.append(reinterpret_cast<const char*>(z.data()), z.size());
      payload = packed;
      flags = kFlagZstd;
    }
  }
  if (wire_bytes != nullptr) *wire_bytes += payload.size();
  std::string h;
  h.reserve(kHeaderSize);
  h.push_back('C');
  h.push_back('M');
  h.push_back(static_cast<char>(type));
  h.push_back(static_cast<char>(flags));
  PutU32(&h, static_cast<std::uint32_t>(payload.size()));
  PutU64(&h, image::Checksum64(payload));
  RETURN_IF_ERROR(s->Write(h.data(), h.size()));
  if (payload.empty()) return Status::Ok();
  if (corrupt) {
    std::string bad(payload);
    bad[bad.size() / 2] ^= 0x10;
    return s->Write(bad.data(), bad.size());
  }
  return s->Write(payload.data(), payload.size());
}

}  // namespace

Status SendJson(Stream* s, FrameType type, const nlohmann::json& j) {
  return SendFrame(s, type, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Status RecvFrame(Stream* s, int timeout_ms, Frame* out) {
  Frame& f = *out;
  unsigned char h[kHeaderSize];
  RETURN_IF_ERROR(s->Read(h, sizeof h, timeout_ms));
  if (h[0] != 'C' || h[1] != 'M' || (h[3] & ~kFlagZstd) != 0 || h[2] < 1 ||
      h[2] > static_cast<unsigned char>(FrameType::kPagesEnd)) {
    return Corruption("malformed frame header from " + s->Describe() +
                      " (not a ckpt migration peer, or a damaged stream)");
  }
  std::uint32_t len = DecodeU32(h + 4);
  std::uint64_t sum = DecodeU64(h + 8);
  if (len > kMaxPayload)
    return Corruption("frame of " + std::to_string(len) + " bytes from " + s->Describe());
  f.type = static_cast<FrameType>(h[2]);
  f.payload.resize(len);
  if (len > 0) RETURN_IF_ERROR(s->Read(f.payload.data(), len, timeout_ms));
  if (image::Checksum64(f.payload) != sum) {
    return Corruption("a " + FrameTypeName(f.type) + " frame from " + s->Describe() +
                      " failed its checksum: the stream was damaged in transit");
  }
  if (h[3] & kFlagZstd) {
    if (!image::CodecAvailable(image::CodecId::kZstd))
      return NotSupported("the source compresses with zstd, which this build of ckpt lacks");
    if (f.payload.size() < 4) return Corruption("a compressed frame without its length");
    std::uint32_t raw = DecodeU32(reinterpret_cast<const unsigned char*>(f.payload.data()));
    if (raw > kMaxPayload) return Corruption("a compressed frame of " + std::to_string(raw) + " bytes");
    std::string raw_data(raw, '\0');
    RETURN_IF_ERROR(image::Decompress(image::CodecId::kZstd, f.payload.data() + 4, f.payload.size() - 4,
                                      raw_data.data(), raw)
                        .WithContext("a compressed frame from " + s->Describe()));
    f.payload = std::move(raw_data);
  }
  return Status::Ok();
}

Result<Frame> RecvFrame(Stream* s, int timeout_ms) {
  Frame f;
  RETURN_IF_ERROR(RecvFrame(s, timeout_ms, &f));
  return f;
}

Result<nlohmann::json> ParseJson(const Frame& f) {
  auto j = nlohmann::json::parse(f.payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corruption("malformed " + FrameTypeName(f.type) + " frame");
  return j;
}

Status FrameSink::Append(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  pos_ += size;
  while (size > 0) {
    std::size_t take = std::min(size, kDataChunk - buf_.size());
    buf_.append(p, take);
    p += take;
    size -= take;
    if (buf_.size() == kDataChunk) RETURN_IF_ERROR(Flush());
  }
  return Status::Ok();
}

Status FrameSink::Flush() {
  if (buf_.empty()) return Status::Ok();
  Status st = SendFrameImpl(s_, FrameType::kData, buf_, compress_, &sent_, corrupt_first_);
  corrupt_first_ = false;
  buf_.clear();
  return st;
}

}  // namespace ckpt::net
