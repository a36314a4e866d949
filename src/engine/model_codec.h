// Helpers shared by the process-image section codecs (model.cc, tree_model.cc):
// signed 32-bit fields, the model version byte each section starts with, and
// the check that a section was read exactly to its end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "util/bytes.h"
#include "util/status.h"

namespace ckpt::engine {

inline void PutI32(std::string* o, std::int32_t v) {
  PutU32(o, static_cast<std::uint32_t>(v));
}

inline std::int32_t GetI32(ByteReader& r) {
  return static_cast<std::int32_t>(r.U32());
}

// A new section's bytes: the model version first.
inline std::string VersionedSection() {
  return std::string(1, static_cast<char>(kModelVersion));
}

inline Status CheckVersion(ByteReader& r, const char* what) {
  std::uint8_t v = r.U8();
  if (!r.ok()) return Corruption(std::string("empty ") + what + " section in process image");
  if (v != kModelVersion) {
    return NotSupported(std::string(what) + " section has model version " + std::to_string(v) +
                        ", this ckpt reads version " + std::to_string(kModelVersion));
  }
  return Status::Ok();
}

// The section decoded without error and with no bytes left over.
inline Status Expect(ByteReader& r, const char* what) {
  if (!r.ok() || !r.empty())
    return Corruption(std::string("malformed ") + what + " section in process image");
  return Status::Ok();
}

// Decoders of the resource sections (model_resources.cc).
Status DecodeEvents(std::string_view in, std::vector<EventFile>* e);
Status DecodeLocks(std::string_view in, std::vector<FileLock>* l);
Status DecodePosixTimers(std::string_view in, std::vector<PosixTimer>* t);
Status DecodeSockets(std::string_view in, std::vector<UnixSocket>* v);
Status DecodeInetSockets(std::string_view in, std::vector<InetSocket>* v);
Status DecodeUnixListeners(std::string_view in, std::vector<UnixListener>* v);
Status DecodeUnixExternal(std::string_view in, std::vector<UnixSocket>* v);
// Fills the connections into `v` (decoded from the inet section), by inode.
Status DecodeConnections(std::string_view in, std::vector<InetSocket>* v);

}  // namespace ckpt::engine
