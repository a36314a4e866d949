// ImageReader over an image that is still being written: the sections in the
// order written, each found from its header and (once passed) its frames;
// the table and trailer at the end are checked against what was found.
#include <cstring>
#include <set>
#include <string_view>

#include "image/checksum.h"
#include "image/reader.h"
#include "util/bytes.h"

namespace ckpt::image {

namespace {

std::string Off(std::uint64_t v) {
  return std::to_string(v);
}

// Names and attributes longer than this are taken as damage.
constexpr std::uint64_t kMaxHeaderString = 1 << 20;
// Bytes read for a varint whose length is not known yet: its most.
constexpr std::size_t kVarintMax = 10;

// How many bytes the section header at the start of `h` takes (its checksum
// included), as far as `h` tells: more than h.size() means read that many and
// ask again. 0: malformed.
std::size_t HeaderNeed(std::string_view h) {
  ByteReader br(h);
  br.U32();
  br.U32();
  br.U8();
  br.U8();
  br.U16();
  if (!br.ok()) return 12;
  for (int field = 0; field < 2; ++field) {  // name, attrs
    std::size_t at = h.size() - br.remaining();
    ByteReader len(h.substr(at, std::min(kVarintMax, h.size() - at)));
    std::uint64_t n = len.Varint();
    if (!len.ok()) return h.size() - at >= kVarintMax ? 0 : at + kVarintMax;
    if (n > kMaxHeaderString) return 0;
    std::size_t end =
        at + (std::min(kVarintMax, h.size() - at) - len.remaining()) + static_cast<std::size_t>(n);
    if (end > h.size()) return end + (field == 0 ? kVarintMax : 8);
    br.String();
  }
  return h.size() - br.remaining() + 8;
}

}  // namespace

Result<std::unique_ptr<ImageReader>> ImageReader::OpenStreamed(std::unique_ptr<RandomAccessSource> src,
                                                               std::uint64_t limit) {
  std::unique_ptr<ImageReader> r(new ImageReader(std::move(src)));
  r->streamed_ = true;
  r->limit_ = limit;
  RETURN_IF_ERROR(r->ParseHeader(limit, /*exact=*/false));
  return r;
}

Result<const SectionInfo*> ImageReader::Seek(std::uint32_t type, std::optional<std::string_view> name) {
  if (const SectionInfo* known = Find(type, name); known != nullptr || !streamed_) return known;
  auto match = [&](const SectionInfo& s) { return s.type == type && (!name || s.name == *name); };
  while (true) {
    ASSIGN_OR_RETURN(const SectionInfo* s, NextSection());
    if (s == nullptr || match(*s)) return s;
  }
}

Result<const SectionInfo*> ImageReader::NextSection() {
  if (!streamed_) return Internal("NextSection() is for streamed images");
  if (table_reached_) return static_cast<const SectionInfo*>(nullptr);
  std::uint64_t pos = header_size_;
  if (!found_.empty()) {
    Found& last = found_.back();
    if (!last.complete) RETURN_IF_ERROR(ScanFrames(&last));
    pos = last.info.offset + last.info.stored_size;
  }
  if (pos > limit_ || limit_ - pos < 4 + kTrailerSize)
    return Corruption(src_->Name() + ": the image runs past " + Off(limit_) + " bytes");
  unsigned char m[4];
  RETURN_IF_ERROR(src_->ReadAt(pos, 4, m));
  if (DecodeU32(m) == kTableMagic) {
    table_reached_ = true;
    table_off_ = pos;
    return static_cast<const SectionInfo*>(nullptr);
  }
  Found f;
  RETURN_IF_ERROR(ReadSectionHeader(pos, &f));
  if (header_.kind != ImageKind::kProcess) {
    for (const Found& g : found_) {
      if (g.info.type == f.info.type && g.info.name == f.info.name) {
        return Corruption(src_->Name() + ": section '" + f.info.name + "' (type " +
                          std::to_string(f.info.type) + ") appears twice");
      }
    }
  }
  found_.push_back(std::move(f));
  return &found_.back().info;
}

Status ImageReader::ReadSectionHeader(std::uint64_t pos, Found* f) const {
  auto bad = [&](const std::string& why) {
    return Corruption(src_->Name() + ": section header at offset " + Off(pos) + " " + why);
  };
  std::string h;
  std::size_t need = 12 + kVarintMax;
  for (int pass = 0; pass < 4 && need > h.size(); ++pass) {
    // The header is followed by at least an end frame, the table and the
    // trailer: reading a few bytes past it stays inside a complete image.
    if (need > limit_ - pos) return bad("runs past the end of the image");
    h.resize(need);
    RETURN_IF_ERROR(src_->ReadAt(pos, need, h.data()));
    need = HeaderNeed(h);
    if (need == 0) return bad("is damaged");
  }
  if (need > h.size()) return bad("is damaged");
  auto parsed = ParseSectionHeader(std::string_view(h).substr(0, need));
  if (!parsed.ok())
    return Corruption(src_->Name() + ": offset " + Off(pos) + ": " + parsed.status().message());
  const SectionHeader& sh = *parsed;
  const std::uint8_t codec = sh.codec;
  const std::string_view name = sh.name, attrs = sh.attrs;
  if (codec > 2) {
    return NotSupported(src_->Name() + ": section '" + std::string(name) + "' uses unknown codec id " +
                        std::to_string(codec) + " (a newer ckpt wrote it)");
  }
  f->info.type = sh.type;
  f->info.flags = sh.flags;
  f->info.codec = static_cast<CodecId>(codec);
  f->info.name = std::string(name);
  f->info.attrs = std::string(attrs);
  f->info.offset = pos;
  f->data = pos + need;
  return Status::Ok();
}

Status ImageReader::ScanFrames(Found* f) const {
  SectionInfo& s = f->info;
  auto bad = [&](const std::string& why) {
    return Corruption(src_->Name() + ": section '" + s.name + "': " + why);
  };
  std::uint64_t pos = f->data, raw_total = 0, frames = 0;
  while (true) {
    if (pos > limit_ || limit_ - pos < kFrameHeaderSize) return bad("runs past the end of the image");
    unsigned char fh[kFrameHeaderSize];
    RETURN_IF_ERROR(src_->ReadAt(pos, kFrameHeaderSize, fh));
    std::uint32_t raw = DecodeU32(fh);
    std::uint32_t stored_field = DecodeU32(fh + 4);
    pos += kFrameHeaderSize;
    if (raw == 0) {
      if (stored_field != 0 || DecodeU64(fh + 8) != raw_total) return bad("section end marker is damaged");
      break;
    }
    bool is_raw = (stored_field & kFrameStoredRaw) != 0;
    std::uint32_t stored = stored_field & ~kFrameStoredRaw;
    if (raw > kMaxFrameRaw || (is_raw && stored != raw) || (!is_raw && stored >= raw) ||
        (!is_raw && s.codec == CodecId::kNone) || stored > limit_ - pos) {
      return bad("frame " + Off(frames) + " at offset " + Off(pos - kFrameHeaderSize) +
                 " has an invalid length");
    }
    pos += stored;
    raw_total += raw;
    ++frames;
  }
  s.stored_size = pos - s.offset;
  s.raw_size = raw_total;
  s.frames = frames;
  f->complete = true;
  return Status::Ok();
}

Status ImageReader::Finish() {
  if (!streamed_ || finished_) return Status::Ok();
  while (true) {
    ASSIGN_OR_RETURN(const SectionInfo* s, NextSection());
    if (s == nullptr) break;
  }
  const std::uint64_t size = src_->Size();  // waits for the writer to finish
  std::vector<SectionInfo> table;
  std::uint64_t table_off = 0;
  RETURN_IF_ERROR(ParseTable(size, &table, &table_off));
  const std::string& name = src_->Name();
  if (table_off != table_off_ || table.size() != found_.size()) {
    return Corruption(name + ": the section table lists " + Off(table.size()) + " sections at offset " +
                      Off(table_off) + "; the image holds " + Off(found_.size()) + " before offset " +
                      Off(table_off_));
  }
  for (std::size_t i = 0; i < table.size(); ++i) {
    const SectionInfo& t = table[i];
    const SectionInfo& f = found_[i].info;
    if (t.type != f.type || t.flags != f.flags || t.codec != f.codec || t.name != f.name ||
        t.attrs != f.attrs || t.offset != f.offset || t.stored_size != f.stored_size ||
        t.raw_size != f.raw_size || t.frames != f.frames) {
      return Corruption(name + ": the section table disagrees with section '" + f.name + "' as written");
    }
  }
  sections_ = std::move(table);
  finished_ = true;
  return Status::Ok();
}

}  // namespace ckpt::image
