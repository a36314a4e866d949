#include "image/reader.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>
#include <utility>

#include "image/checksum.h"
#include "image/codec.h"
#include "util/bytes.h"

namespace ckpt::image {

namespace {
std::string Off(std::uint64_t v) {
  return std::to_string(v);
}
}  // namespace

Result<std::unique_ptr<ImageReader>> ImageReader::Open(std::unique_ptr<RandomAccessSource> src) {
  std::unique_ptr<ImageReader> r(new ImageReader(std::move(src)));
  Status st = r->Load();
  if (!st.ok()) return st;
  return r;
}

Status ImageReader::Load() {
  const std::uint64_t size = src_->Size();
  RETURN_IF_ERROR(ParseHeader(size, /*exact=*/true));
  std::uint64_t table_off = 0;
  RETURN_IF_ERROR(ParseTable(size, &sections_, &table_off));
  // Program and group images name each section once per type: a second
  // variable (or member, or segment) of the same name would be ambiguous.
  // (Process images are checked by their own model.)
  if (header_.kind != ImageKind::kProcess) {
    std::set<std::pair<std::uint32_t, std::string_view>> seen;
    for (const SectionInfo& s : sections_) {
      if (!seen.insert({s.type, s.name}).second) {
        return Corruption(src_->Name() + ": section '" + s.name + "' (type " + std::to_string(s.type) +
                          ") appears twice in the section table");
      }
    }
  }
  return Status::Ok();
}

Status ImageReader::ParseHeader(std::uint64_t size, bool exact) {
  const std::string& name = src_->Name();
  unsigned char h[kFileHeaderSize];
  if (exact && size < kFileHeaderSize) {
    if (size >= 8) {
      RETURN_IF_ERROR(src_->ReadAt(0, 8, h));
      if (std::memcmp(h, kFileMagic, 8) == 0)
        return Corruption(name + ": truncated image (" + Off(size) + " bytes, shorter than its header)");
    }
    return InvalidArgument(name + ": not a ckpt image (" + Off(size) + " bytes, no ckpt header)");
  }
  RETURN_IF_ERROR(src_->ReadAt(0, kFileHeaderSize, h));
  if (std::memcmp(h, kFileMagic, 8) != 0)
    return InvalidArgument(name + ": not a ckpt image (bad magic number)");
  header_.major = DecodeU16(h + 8);
  header_.minor = DecodeU16(h + 10);
  std::uint16_t kind = DecodeU16(h + 12);
  header_.flags = DecodeU16(h + 14);
  std::uint32_t header_size = DecodeU32(h + 16);
  if (Checksum64(h, 24) != DecodeU64(h + 24))
    return Corruption(name + ": image header checksum mismatch (the header is damaged)");
  if (header_.major > kFormatMajor) {
    return NotSupported(name + ": image format " + std::to_string(header_.major) + "." +
                        std::to_string(header_.minor) + " is newer than this build understands (" +
                        std::to_string(kFormatMajor) + ".x); upgrade ckpt to read it");
  }
  if (header_.major < 1) return NotSupported(name + ": image format version 0 is not supported");
  if (kind < 1 || kind > 3) {
    return NotSupported(name + ": unknown image kind " + std::to_string(kind) +
                        " (this build knows program, group and process images)");
  }
  header_.kind = static_cast<ImageKind>(kind);
  if (header_size < kFileHeaderSize || header_size > size)
    return Corruption(name + ": header size " + std::to_string(header_size) + " is invalid");
  if (size < header_size + kTrailerSize) {
    return Corruption(name + ": truncated image (" + Off(size) +
                      " bytes; the section table and trailer are missing)");
  }
  header_size_ = header_size;
  return Status::Ok();
}

Status ImageReader::ParseTable(std::uint64_t size, std::vector<SectionInfo>* out,
                               std::uint64_t* table_off_out) const {
  const std::string& name = src_->Name();
  if (size < header_size_ + kTrailerSize) {
    return Corruption(name + ": truncated image (" + Off(size) +
                      " bytes; the section table and trailer are missing)");
  }
  unsigned char tr[kTrailerSize];
  RETURN_IF_ERROR(src_->ReadAt(size - kTrailerSize, kTrailerSize, tr));
  if (std::memcmp(tr + 24, kTrailerMagic, 8) != 0) {
    return Corruption(name + ": truncated or incomplete image: no trailer at its end (" + Off(size) +
                      " bytes; the file was cut short or not completely written)");
  }
  std::uint64_t table_off = DecodeU64(tr);
  std::uint64_t table_len = DecodeU64(tr + 8);
  std::uint64_t table_sum = DecodeU64(tr + 16);
  if (table_off < header_size_ || table_off > size - kTrailerSize ||
      table_len != size - kTrailerSize - table_off) {
    return Corruption(name + ": section table position is invalid (offset " + Off(table_off) + ", length " +
                      Off(table_len) + ", file " + Off(size) + " bytes)");
  }
  std::string table(static_cast<std::size_t>(table_len), '\0');
  RETURN_IF_ERROR(src_->ReadAt(table_off, table.size(), table.data()));
  if (Checksum64(table) != table_sum)
    return Corruption(name + ": section table checksum mismatch (the table is damaged)");
  ByteReader br(table);
  if (br.U32() != kTableMagic) return Corruption(name + ": section table has a bad magic number");
  std::uint64_t count = br.Varint();
  if (!br.ok() || count > table.size())
    return Corruption(name + ": section table has an invalid section count");
  std::uint64_t prev_end = header_size_;
  for (std::uint64_t i = 0; i < count; ++i) {
    SectionInfo s;
    std::uint64_t type = br.Varint();
    s.flags = br.U8();
    std::uint8_t codec = br.U8();
    s.name = std::string(br.String());
    s.attrs = std::string(br.String());
    s.offset = br.Varint();
    s.stored_size = br.Varint();
    s.raw_size = br.Varint();
    s.frames = br.Varint();
    if (!br.ok()) return Corruption(name + ": section table entry " + Off(i) + " is malformed");
    if (type > 0xffffffffu) return Corruption(name + ": section " + Off(i) + " has an invalid type");
    s.type = static_cast<std::uint32_t>(type);
    if (codec > 2) {
      return NotSupported(name + ": section '" + s.name + "' uses unknown codec id " + std::to_string(codec) +
                          " (a newer ckpt wrote it)");
    }
    s.codec = static_cast<CodecId>(codec);
    if (s.offset < prev_end || s.offset > table_off || s.stored_size > table_off - s.offset) {
      return Corruption(name + ": section '" + s.name + "' lies outside the image (offset " + Off(s.offset) +
                        ", " + Off(s.stored_size) + " bytes)");
    }
    if (s.frames > s.stored_size / kFrameHeaderSize || s.raw_size > s.frames * kMaxFrameRaw) {
      return Corruption(name + ": section '" + s.name + "' has impossible sizes (" + Off(s.raw_size) +
                        " bytes in " + Off(s.frames) + " frames)");
    }
    prev_end = s.offset + s.stored_size;
    out->push_back(std::move(s));
  }
  if (!br.empty()) return Corruption(name + ": section table has trailing bytes");
  *table_off_out = table_off;
  return Status::Ok();
}

const SectionInfo* ImageReader::Find(std::uint32_t type, std::optional<std::string_view> name) const {
  auto match = [&](const SectionInfo& s) { return s.type == type && (!name || s.name == *name); };
  if (streamed_) {
    for (const Found& f : found_) {
      if (match(f.info)) return &f.info;
    }
    return nullptr;
  }
  for (const SectionInfo& s : sections_) {
    if (match(s)) return &s;
  }
  return nullptr;
}

std::vector<const SectionInfo*> ImageReader::Known() const {
  std::vector<const SectionInfo*> out;
  if (streamed_) {
    // Found ones, also after Finish(): OpenSection knows a section still
    // arriving by its address.
    for (const Found& f : found_) out.push_back(&f.info);
  } else {
    for (const SectionInfo& s : sections_) out.push_back(&s);
  }
  return out;
}

Result<std::unique_ptr<SectionStream>> ImageReader::OpenSection(const SectionInfo& info) const {
  std::unique_ptr<SectionStream> s;
  for (const Found& f : found_) {
    if (&f.info == &info && !f.complete) s = std::make_unique<SectionStream>(src_.get(), &info, limit_);
  }
  if (!s) s = std::make_unique<SectionStream>(src_.get(), &info);
  RETURN_IF_ERROR(s->Open());
  return s;
}

Result<std::string> ImageReader::ReadSection(const SectionInfo& info) const {
  ASSIGN_OR_RETURN(auto s, OpenSection(info));
  return s->ReadAll();
}

Status ImageReader::VerifyAll() const {
  for (const SectionInfo& info : sections_) {
    ASSIGN_OR_RETURN(auto s, OpenSection(info));
    RETURN_IF_ERROR(s->Drain());
  }
  return Status::Ok();
}

Result<SectionHeader> ParseSectionHeader(std::string_view h) {
  ByteReader br(h);
  SectionHeader out;
  std::uint32_t magic = br.U32();
  out.type = br.U32();
  out.codec = br.U8();
  out.flags = br.U8();
  br.U16();
  out.name = br.String();
  out.attrs = br.String();
  std::size_t covered = h.size() - br.remaining();
  std::uint64_t sum = br.U64();
  if (!br.ok() || magic != kSectionMagic) return Corruption("section header is damaged");
  if (Checksum64(h.data(), covered) != sum) return Corruption("section header checksum mismatch");
  out.size = covered + 8;
  return out;
}

SectionStream::SectionStream(const RandomAccessSource* src, const SectionInfo* info)
    : src_(src), info_(info) {}

SectionStream::SectionStream(const RandomAccessSource* src, const SectionInfo* info, std::uint64_t limit)
    : src_(src), info_(info), open_(true), limit_(limit) {}

std::uint64_t SectionStream::remaining() const {
  if (!open_) return info_->raw_size - consumed_;
  std::uint64_t buffered = decoded_ - consumed_;
  if (ended_ || pos_ >= limit_) return buffered;
  // Raw frames hold no more than their bytes; a compressed frame of at
  // least one stored byte decodes to at most kMaxFrameRaw.
  std::uint64_t left = limit_ - pos_;
  if (info_->codec == CodecId::kNone) return buffered + left;
  std::uint64_t frames = left / (kFrameHeaderSize + 1);
  return frames > (~std::uint64_t{0} - buffered) / kMaxFrameRaw ? ~std::uint64_t{0}
                                                                : buffered + frames * kMaxFrameRaw;
}

Status SectionStream::Where(Status s) const {
  return s.WithContext(src_->Name() + ": section '" + info_->name + "'");
}

Status SectionStream::Open() {
  // Section header: magic, type, codec, flags, reserved, name, attrs, checksum.
  std::uint64_t most = open_ ? limit_ - std::min(limit_, info_->offset) : info_->stored_size;
  std::size_t want = static_cast<std::size_t>(
      std::min<std::uint64_t>(most, 12 + 20 + info_->name.size() + info_->attrs.size() + 8));
  std::string h(want, '\0');
  RETURN_IF_ERROR(src_->ReadAt(info_->offset, want, h.data()));
  auto sh = ParseSectionHeader(h);
  if (!sh.ok()) return Where(sh.status().WithContext("offset " + Off(info_->offset)));
  if (sh->type != info_->type || sh->codec != static_cast<std::uint8_t>(info_->codec) ||
      sh->flags != info_->flags || sh->name != info_->name || sh->attrs != info_->attrs)
    return Where(Corruption("section header disagrees with the section table"));
  if (!CodecAvailable(info_->codec) && info_->raw_size > 0) {
    return Where(NotSupported("it is compressed with " + std::string(CodecName(info_->codec)) +
                              ", which this build lacks (it has " + AvailableCodecs() +
                              "); re-encode it with `ckpt convert --codec none IMAGE` on a build "
                              "that has " +
                              std::string(CodecName(info_->codec))));
  }
  pos_ = info_->offset + sh->size;
  return Status::Ok();
}

// Reads the next frame header. A raw frame that fits in `direct_dst` is read
// straight into it (no copy); otherwise the frame is decoded into buf_.
Status SectionStream::NextFrame(void* direct_dst, std::size_t direct_cap, bool* went_direct) {
  *went_direct = false;
  const std::uint64_t end = open_ ? limit_ : info_->offset + info_->stored_size;
  if (ended_) return Where(Corruption("read past the end of the section"));
  if (pos_ + kFrameHeaderSize > end)
    return Where(Corruption("frame " + Off(frame_index_) + " runs past the section's end"));
  unsigned char fh[kFrameHeaderSize];
  RETURN_IF_ERROR(src_->ReadAt(pos_, kFrameHeaderSize, fh));
  pos_ += kFrameHeaderSize;
  std::uint32_t raw = DecodeU32(fh);
  std::uint32_t stored_field = DecodeU32(fh + 4);
  std::uint64_t sum = DecodeU64(fh + 8);
  if (raw == 0) {
    if (stored_field != 0 || sum != decoded_ || (!open_ && (decoded_ != info_->raw_size || pos_ != end)))
      return Where(Corruption("section end marker is damaged"));
    ended_ = true;
    return Status::Ok();
  }
  bool is_raw = (stored_field & kFrameStoredRaw) != 0;
  std::uint32_t stored = stored_field & ~kFrameStoredRaw;
  if (!is_raw && info_->codec == CodecId::kNone) {
    return Where(Corruption("frame " + Off(frame_index_) + " at offset " + Off(pos_ - kFrameHeaderSize) +
                            " is marked compressed in a section stored without a codec"));
  }
  if (raw > kMaxFrameRaw || (is_raw && stored != raw) || (!is_raw && stored >= raw) || stored > end - pos_ ||
      (!open_ && decoded_ + raw > info_->raw_size)) {
    return Where(Corruption("frame " + Off(frame_index_) + " at offset " + Off(pos_ - kFrameHeaderSize) +
                            " has an invalid length"));
  }
  if (is_raw && direct_dst != nullptr && raw <= direct_cap) {
    RETURN_IF_ERROR(src_->ReadAt(pos_, raw, direct_dst));
    if (Checksum64(direct_dst, raw) != sum)
      return Where(Corruption("frame " + Off(frame_index_) + " checksum mismatch (data damaged)"));
    *went_direct = true;
  } else {
    stored_.resize(stored);
    RETURN_IF_ERROR(src_->ReadAt(pos_, stored, stored_.data()));
    if (Checksum64(stored_.data(), stored) != sum)
      return Where(Corruption("frame " + Off(frame_index_) + " checksum mismatch (data damaged)"));
    if (is_raw) {
      buf_.swap(stored_);
    } else {
      buf_.resize(raw);
      Status st = Decompress(info_->codec, stored_.data(), stored, buf_.data(), raw);
      if (!st.ok()) return Where(st.WithContext("frame " + Off(frame_index_)));
    }
    buf_pos_ = 0;
  }
  pos_ += stored;
  decoded_ += raw;
  ++frame_index_;
  return Status::Ok();
}

Status SectionStream::Read(void* dst, std::size_t size) {
  if (size > remaining()) {
    return Where(Corruption("wanted " + Off(size) + " more bytes but only " + Off(remaining()) +
                            " remain in the section"));
  }
  auto* out = static_cast<unsigned char*>(dst);
  while (size > 0) {
    std::size_t avail = buf_.size() - buf_pos_;
    if (avail > 0) {
      std::size_t n = std::min(avail, size);
      std::memcpy(out, buf_.data() + buf_pos_, n);
      buf_pos_ += n;
      out += n;
      size -= n;
      consumed_ += n;
      continue;
    }
    bool direct = false;
    buf_.clear();
    buf_pos_ = 0;
    std::uint64_t before = decoded_;
    RETURN_IF_ERROR(NextFrame(out, size, &direct));
    if (ended_) return Where(Corruption("section ended early"));
    if (direct) {
      std::size_t n = static_cast<std::size_t>(decoded_ - before);
      out += n;
      size -= n;
      consumed_ += n;
    }
  }
  return Status::Ok();
}

Result<std::size_t> SectionStream::ReadSome(void* dst, std::size_t max) {
  if (!open_) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(max, remaining()));
    RETURN_IF_ERROR(Read(dst, n));
    return n;
  }
  auto* out = static_cast<unsigned char*>(dst);
  std::size_t got = 0;
  while (got < max) {
    std::size_t avail = buf_.size() - buf_pos_;
    if (avail == 0) {
      if (ended_) break;
      bool direct = false;
      buf_.clear();
      buf_pos_ = 0;
      RETURN_IF_ERROR(NextFrame(nullptr, 0, &direct));
      continue;
    }
    std::size_t n = std::min(avail, max - got);
    std::memcpy(out + got, buf_.data() + buf_pos_, n);
    buf_pos_ += n;
    got += n;
    consumed_ += n;
  }
  return got;
}

Result<std::string> SectionStream::ReadAll() {
  if (open_) {
    std::string out;
    std::string chunk(1 << 16, '\0');
    while (true) {
      ASSIGN_OR_RETURN(std::size_t n, ReadSome(chunk.data(), chunk.size()));
      if (n == 0) break;
      out.append(chunk.data(), n);
    }
    return out;
  }
  std::string out(static_cast<std::size_t>(remaining()), '\0');
  RETURN_IF_ERROR(Read(out.data(), out.size()));
  RETURN_IF_ERROR(Drain());
  return out;
}

Status SectionStream::Drain(std::uint64_t* skipped) {
  std::uint64_t start = consumed_;
  consumed_ += buf_.size() - buf_pos_;
  buf_.clear();
  buf_pos_ = 0;
  while (!ended_) {
    bool direct = false;
    std::uint64_t before = decoded_;
    RETURN_IF_ERROR(NextFrame(nullptr, 0, &direct));
    consumed_ += decoded_ - before;
    buf_.clear();
  }
  if (skipped != nullptr) *skipped = consumed_ - start;
  return Status::Ok();
}

}  // namespace ckpt::image
