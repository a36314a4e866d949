// ImageWriter streams an image into a Sink: header, sections (each cut into
// checksummed frames, optionally compressed), then the section table and the
// trailer. Nothing is seeked, so the same writer feeds files and sockets.
// One writer per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "image/codec.h"
#include "image/format.h"
#include "image/io.h"
#include "util/status.h"

namespace ckpt::image {

struct WriterOptions {
  CodecId codec = CodecId::kNone;
  int level = 0;  // 0: the codec's default
  std::uint32_t frame_size = kDefaultFrameSize;
};

struct SectionInfo {
  std::uint32_t type = 0;
  std::uint8_t flags = 0;
  CodecId codec = CodecId::kNone;
  std::string name;
  std::string attrs;              // type-specific metadata (a variable's type descriptor ...)
  std::uint64_t offset = 0;       // of the section header in the file
  std::uint64_t stored_size = 0;  // bytes from section header to end of its last frame
  std::uint64_t raw_size = 0;     // decoded payload bytes
  std::uint64_t frames = 0;
};

// The 16 bytes before a frame's data: raw length, stored length with the
// kFrameStoredRaw flag where the data is stored raw, checksum. An end frame
// is (0, 0, the section's raw length).
void EncodeFrameHeader(unsigned char* h, std::uint32_t raw, std::uint32_t stored_field, std::uint64_t sum);

class ImageWriter {
 public:
  ImageWriter(Sink* sink, ImageKind kind, WriterOptions options = {});
  ImageWriter(const ImageWriter&) = delete;
  ImageWriter& operator=(const ImageWriter&) = delete;

  Status Begin();
  // Starts a section. `codec` overrides the writer's default codec.
  Status BeginSection(std::uint32_t type, std::string_view name, std::string_view attrs,
                      std::uint8_t flags = kSectionRequired);
  Status BeginSection(std::uint32_t type, std::string_view name, std::string_view attrs, std::uint8_t flags,
                      CodecId codec);
  Status Write(const void* data, std::size_t size);
  Status Write(std::string_view s) { return Write(s.data(), s.size()); }
  // Writes `size` bytes (at most kMaxFrameRaw) of an uncompressed section as
  // one frame whose checksum the caller computed: Checksum64(data, size).
  // Lets a producer hash on another thread than the one that writes.
  Status WriteFrameWithChecksum(const void* data, std::size_t size, std::uint64_t checksum);
  // Frames of an uncompressed section that another writer puts into the
  // sink's file directly: BeginDirectFrames flushes what is buffered and
  // returns the sink offset where they start; EndDirectFrames accounts for
  // `frames` frames holding `raw` payload bytes in `stored` bytes (headers
  // included), which the sink must already have skipped.
  Result<std::uint64_t> BeginDirectFrames();
  Status EndDirectFrames(std::uint64_t frames, std::uint64_t raw, std::uint64_t stored);
  Status EndSection();
  // Convenience: a whole section from one buffer.
  Status AddSection(std::uint32_t type, std::string_view name, std::string_view attrs,
                    std::string_view payload, std::uint8_t flags = kSectionRequired);
  // Writes the table and trailer. The sink holds a complete image afterwards.
  Status Finish();

  const std::vector<SectionInfo>& sections() const { return sections_; }

 private:
  Status EmitFrame(const void* data, std::size_t size);
  // Writes a frame whose compressed form is `packed` (empty: store raw).
  Status EmitEncoded(const void* data, std::size_t size, const std::vector<unsigned char>& packed,
                     const std::uint64_t* raw_checksum = nullptr);
  Status FlushFrameBuffer();

  Sink* sink_;
  ImageKind kind_;
  WriterOptions opt_;
  std::vector<SectionInfo> sections_;
  bool begun_ = false;
  bool in_section_ = false;
  bool finished_ = false;
  Status sticky_;
  CodecId section_codec_ = CodecId::kNone;
  int section_level_ = 0;
  // Not zeroed: only what a section writes is touched (fresh pages cost a
  // fault each, and a small image uses a few KiB of the 1 MiB frame).
  std::unique_ptr<unsigned char[]> frame_buf_;  // opt_.frame_size bytes
  std::size_t frame_fill_ = 0;
  std::vector<unsigned char> compressed_;
  std::uint64_t direct_start_ = 0;
  bool in_direct_ = false;
};

}  // namespace ckpt::image
