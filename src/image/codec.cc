#include "image/codec.h"

#include <string>

#if CKPT_HAVE_ZSTD
#include <zstd.h>
#endif
#if CKPT_HAVE_ZLIB
#include <zlib.h>
#endif

namespace ckpt::image {

std::string_view CodecName(CodecId id) {
  switch (id) {
    case CodecId::kNone:
      return "none";
    case CodecId::kZstd:
      return "zstd";
    case CodecId::kZlib:
      return "zlib";
  }
  return "unknown";
}

std::optional<CodecId> ParseCodec(std::string_view name) {
  if (name == "none") return CodecId::kNone;
  if (name == "zstd") return CodecId::kZstd;
  if (name == "zlib") return CodecId::kZlib;
  return std::nullopt;
}

bool CodecAvailable(CodecId id) {
  switch (id) {
    case CodecId::kNone:
      return true;
    case CodecId::kZstd:
      return CKPT_HAVE_ZSTD != 0;
    case CodecId::kZlib:
      return CKPT_HAVE_ZLIB != 0;
  }
  return false;
}

std::string AvailableCodecs() {
  std::string s = "none";
  if (CodecAvailable(CodecId::kZstd)) s += ", zstd";
  if (CodecAvailable(CodecId::kZlib)) s += ", zlib";
  return s;
}

int DefaultLevel(CodecId id) {
  switch (id) {
    case CodecId::kZstd:
      return 1;
    case CodecId::kZlib:
      return 1;
    default:
      return 0;
  }
}

[[maybe_unused]] static Status Missing(CodecId id) {
  return NotSupported("codec " + std::string(CodecName(id)) +
                      " is not available in this build (it has: " + AvailableCodecs() +
                      "); re-encode the image with `ckpt convert --codec` on a build that has it");
}

Status Compress(CodecId id, int level, const void* in, std::size_t in_size, std::vector<unsigned char>* out) {
  out->clear();
  switch (id) {
    case CodecId::kNone:
      return Status::Ok();
    case CodecId::kZstd: {
#if CKPT_HAVE_ZSTD
      std::size_t bound = ZSTD_compressBound(in_size);
      out->resize(bound);
      std::size_t n = ZSTD_compress(out->data(), bound, in, in_size, level);
      if (ZSTD_isError(n)) {
        out->clear();
        return Internal(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
      }
      if (n >= in_size)
        out->clear();
      else
        out->resize(n);
      return Status::Ok();
#else
      return Missing(id);
#endif
    }
    case CodecId::kZlib: {
#if CKPT_HAVE_ZLIB
      uLongf bound = compressBound(static_cast<uLong>(in_size));
      out->resize(bound);
      int rc =
          compress2(out->data(), &bound, static_cast<const Bytef*>(in), static_cast<uLong>(in_size), level);
      if (rc != Z_OK) {
        out->clear();
        return Internal("zlib compression failed: code " + std::to_string(rc));
      }
      if (bound >= in_size)
        out->clear();
      else
        out->resize(bound);
      return Status::Ok();
#else
      return Missing(id);
#endif
    }
  }
  return InvalidArgument("unknown codec " + std::to_string(static_cast<int>(id)));
}

Status Decompress(CodecId id, const void* in, std::size_t in_size, void* out, std::size_t raw_size) {
  switch (id) {
    case CodecId::kNone:
      return Corruption("a frame is marked compressed, but its section has no codec");
    case CodecId::kZstd: {
#if CKPT_HAVE_ZSTD
      std::size_t n = ZSTD_decompress(out, raw_size, in, in_size);
      if (ZSTD_isError(n)) return Corruption(std::string("zstd: ") + ZSTD_getErrorName(n));
      if (n != raw_size) return Corruption("zstd frame decoded to a wrong length");
      return Status::Ok();
#else
      return Missing(id);
#endif
    }
    case CodecId::kZlib: {
#if CKPT_HAVE_ZLIB
      uLongf n = static_cast<uLongf>(raw_size);
      int rc = uncompress(static_cast<Bytef*>(out), &n, static_cast<const Bytef*>(in),
                          static_cast<uLong>(in_size));
      if (rc != Z_OK) return Corruption("zlib: inflate failed with code " + std::to_string(rc));
      if (n != raw_size) return Corruption("zlib frame decoded to a wrong length");
      return Status::Ok();
#else
      return Missing(id);
#endif
    }
  }
  return NotSupported("unknown codec id " + std::to_string(static_cast<int>(id)));
}

}  // namespace ckpt::image
