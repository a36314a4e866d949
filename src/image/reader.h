// ImageReader opens an image from a RandomAccessSource, checks its header,
// trailer and section table, and hands out SectionStreams that decode one
// section's frames on demand, verifying every frame's checksum. Anything
// malformed becomes a Corruption / NotSupported Status naming the place.
// A reader may be shared by threads only for const calls; streams are per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "image/format.h"
#include "image/io.h"
#include "image/writer.h"
#include "util/status.h"

namespace ckpt::image {

struct FileHeader {
  std::uint16_t major = 0;
  std::uint16_t minor = 0;
  ImageKind kind = ImageKind::kProgram;
  std::uint16_t flags = 0;
};

class SectionStream {
 public:
  SectionStream(const RandomAccessSource* src, const SectionInfo* info);
  // Validates the section header against the table entry.
  Status Open();
  // Reads exactly `size` decoded bytes. Reading past the section's end is an error.
  Status Read(void* dst, std::size_t size);
  // Reads the rest of the section.
  Result<std::string> ReadAll();
  // Decoded bytes not yet read.
  std::uint64_t remaining() const { return info_->raw_size - consumed_; }
  // Reads and checks every remaining frame and the end marker.
  Status Drain();
  const SectionInfo& info() const { return *info_; }

 private:
  Status NextFrame(void* direct_dst, std::size_t direct_cap, bool* went_direct);
  Status Where(Status s) const;

  const RandomAccessSource* src_;
  const SectionInfo* info_;
  std::uint64_t pos_ = 0;       // file offset of the next frame header
  std::uint64_t consumed_ = 0;  // decoded bytes handed out
  std::uint64_t decoded_ = 0;   // decoded bytes produced so far
  std::uint64_t frame_index_ = 0;
  std::vector<unsigned char> buf_;
  std::size_t buf_pos_ = 0;
  std::vector<unsigned char> stored_;
  bool ended_ = false;
};

class ImageReader {
 public:
  static Result<std::unique_ptr<ImageReader>> Open(std::unique_ptr<RandomAccessSource> src);

  const FileHeader& header() const { return header_; }
  const std::vector<SectionInfo>& sections() const { return sections_; }
  const RandomAccessSource& source() const { return *src_; }

  // First section of `type` (and `name`, if given), or nullptr.
  const SectionInfo* Find(std::uint32_t type, std::optional<std::string_view> name = {}) const;
  Result<std::unique_ptr<SectionStream>> OpenSection(const SectionInfo& info) const;
  Result<std::string> ReadSection(const SectionInfo& info) const;
  // Decodes every section and checks every checksum.
  Status VerifyAll() const;

 private:
  explicit ImageReader(std::unique_ptr<RandomAccessSource> src) : src_(std::move(src)) {}
  Status Load();

  std::unique_ptr<RandomAccessSource> src_;
  FileHeader header_;
  std::vector<SectionInfo> sections_;
};

}  // namespace ckpt::image
