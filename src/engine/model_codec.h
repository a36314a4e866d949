// Helpers shared by the process-image section codecs (model.cc,
// model_resources.cc, tree_model.cc): a section is the model version byte,
// then a tagged record (tagged.h) whose field list the encoder and the
// decoder share; the sanity bounds beyond the field lists are checked after
// decoding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "engine/tagged.h"
#include "util/bytes.h"
#include "util/status.h"

namespace ckpt::engine {

using tagged::kCritical;
using tagged::Max;

inline Status CheckVersion(ByteReader& r, const char* what) {
  std::uint8_t v = r.U8();
  if (!r.ok()) return Corruption(std::string("empty ") + what + " section in process image");
  if (v != kModelVersion) {
    return NotSupported(std::string(what) + " section has model version " + std::to_string(v) +
                        ", this ckpt reads version " + std::to_string(kModelVersion) +
                        (v < kModelVersion ? " (image written by an older ckpt, before sections were tagged)"
                                           : " (image written by a newer ckpt)"));
  }
  return Status::Ok();
}

// A section holding `x`: the model version, then the fields of `fields`
// (by default x's own field list).
template <class T, class F = tagged::RecordFields>
std::string EncodeSection(const T& x, F fields = {}) {
  std::string o(1, static_cast<char>(kModelVersion));
  tagged::AppendFields(&o, x, fields);
  return o;
}

// Decodes section `what` into `x` (a default value); the caller checks
// the bounds the field list does not.
template <class T, class F = tagged::RecordFields>
Status DecodeSection(std::string_view in, const char* what, T* x, F fields = {}) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, what));
  return tagged::DecodeFields(in.substr(1), tagged::Where{what}, x, fields);
}

// A decoded section that fails a check beyond its field list.
inline Status Malformed(const char* what) {
  return Corruption(std::string("malformed ") + what + " section in process image");
}

template <class IO>
void Fields(IO& io, PageRun& p) {
  io(1, "addr", p.addr);
  io(2, "pages", p.pages);
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
