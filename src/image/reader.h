// ImageReader opens an image from a RandomAccessSource, checks its header,
// trailer and section table, and hands out SectionStreams that decode one
// section's frames on demand, verifying every frame's checksum. Anything
// malformed becomes a Corruption / NotSupported Status naming the place.
// A reader may be shared by threads only for const calls; streams are per thread.
//
// OpenStreamed reads an image front to back while it is still being written
// (a migration's restore starts as the bytes arrive, the source blocking in
// ReadAt until they do): sections are found in the order written, and
// Finish() checks the table and trailer at the end against what was found.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// A section header's fields, as read from its first bytes.
struct SectionHeader {
  std::uint32_t type = 0;
  std::uint8_t codec = 0;
  std::uint8_t flags = 0;
  std::string_view name, attrs;  // into the bytes parsed
  std::size_t size = 0;          // bytes of the header, its checksum included
};
// Parses and checks (magic, checksum) the section header at the start of `h`;
// an error message (without the place) if it is damaged.
Result<SectionHeader> ParseSectionHeader(std::string_view h);

class SectionStream {
 public:
  SectionStream(const RandomAccessSource* src, const SectionInfo* info);
  // A section of a streamed image whose end is not known yet: it ends at its
  // end frame, and no frame of it may reach past file offset `limit`.
  SectionStream(const RandomAccessSource* src, const SectionInfo* info, std::uint64_t limit);
  // Validates the section header against the table entry.
  Status Open();
  // Reads exactly `size` decoded bytes. Reading past the section's end is an error.
  Status Read(void* dst, std::size_t size);
  // Reads up to `max` decoded bytes: fewer only at the section's end.
  Result<std::size_t> ReadSome(void* dst, std::size_t max);
  // Reads the rest of the section.
  Result<std::string> ReadAll();
  // Decoded bytes not yet read; while the end of a streamed section is not
  // known yet, an upper bound.
  std::uint64_t remaining() const;
  // Reads and checks every remaining frame and the end marker; the decoded
  // bytes it skipped in `*skipped` if given.
  Status Drain(std::uint64_t* skipped = nullptr);
  const SectionInfo& info() const { return *info_; }
  // Decoded bytes produced so far (after Drain: the section's length).
  std::uint64_t decoded() const { return decoded_; }

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
  bool open_ = false;        // the section's sizes are not known yet (streamed)
  std::uint64_t limit_ = 0;  // open_: the file offset no frame may pass
};

class ImageReader {
 public:
  static Result<std::unique_ptr<ImageReader>> Open(std::unique_ptr<RandomAccessSource> src);
  // An image still being written: reads only the file header now. `limit`:
  // the most bytes the image can have (a bound for lengths read from it).
  static Result<std::unique_ptr<ImageReader>> OpenStreamed(std::unique_ptr<RandomAccessSource> src,
                                                           std::uint64_t limit);
  bool streamed() const { return streamed_; }

  const FileHeader& header() const { return header_; }
  // All sections; a streamed image's only after Finish().
  const std::vector<SectionInfo>& sections() const { return sections_; }
  const RandomAccessSource& source() const { return *src_; }

  // First section of `type` (and `name`, if given), or nullptr. In a
  // streamed image: among the sections found so far (Seek, NextSection).
  const SectionInfo* Find(std::uint32_t type, std::optional<std::string_view> name = {}) const;
  // The sections known now: all of a whole image; a streamed image's found so far.
  std::vector<const SectionInfo*> Known() const;
  // Either kind: the section of `type` (and `name`), or nullptr if the image
  // has none; in a streamed image it reads on (waiting for the bytes) until
  // that section's header appears or the table begins.
  Result<const SectionInfo*> Seek(std::uint32_t type, std::optional<std::string_view> name = {});
  // Streamed: the next section in file order, or nullptr where the table begins.
  Result<const SectionInfo*> NextSection();
  // Streamed: reads on to the end, checks the table and trailer against the
  // sections found, then sections() holds them. A whole image: Ok at once.
  Status Finish();
  Result<std::unique_ptr<SectionStream>> OpenSection(const SectionInfo& info) const;
  Result<std::string> ReadSection(const SectionInfo& info) const;
  // Decodes every section and checks every checksum.
  Status VerifyAll() const;

 private:
  explicit ImageReader(std::unique_ptr<RandomAccessSource> src) : src_(std::move(src)) {}
  Status Load();
  // The file header; `size`: the file's size, or a bound on it.
  Status ParseHeader(std::uint64_t size, bool exact);
  // The trailer and section table of a file of `size` bytes.
  Status ParseTable(std::uint64_t size, std::vector<SectionInfo>* out, std::uint64_t* table_off) const;
  // Streamed: a section header at `pos`, and the frames of a section to its end.
  struct Found {
    SectionInfo info;
    std::uint64_t data = 0;  // offset of its first frame
    bool complete = false;   // sizes known (its end frame was read)
  };
  Status ReadSectionHeader(std::uint64_t pos, Found* f) const;
  Status ScanFrames(Found* f) const;

  std::unique_ptr<RandomAccessSource> src_;
  FileHeader header_;
  std::uint32_t header_size_ = 0;
  std::vector<SectionInfo> sections_;
  bool streamed_ = false;
  std::uint64_t limit_ = 0;
  std::deque<Found> found_;  // streamed: sections found so far (stable addresses)
  bool table_reached_ = false;
  bool finished_ = false;
  std::uint64_t table_off_ = 0;
};

}  // namespace ckpt::image
