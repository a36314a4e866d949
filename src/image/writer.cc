#include "image/writer.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "image/checksum.h"
#include "util/bytes.h"

namespace ckpt::image {

ImageWriter::ImageWriter(Sink* sink, ImageKind kind, WriterOptions options)
    : sink_(sink), kind_(kind), opt_(options) {
  if (opt_.frame_size == 0 || opt_.frame_size > kMaxFrameRaw) opt_.frame_size = kDefaultFrameSize;
}

Status ImageWriter::Begin() {
  if (begun_) return Internal("ImageWriter::Begin called twice");
  if (!CodecAvailable(opt_.codec)) {
    return NotSupported("cannot write codec " + std::string(CodecName(opt_.codec)) + ": this build has " +
                        AvailableCodecs());
  }
  begun_ = true;
  std::string h;
  h.append(reinterpret_cast<const char*>(kFileMagic), 8);
  PutU16(&h, kFormatMajor);
  PutU16(&h, kFormatMinor);
  PutU16(&h, static_cast<std::uint16_t>(kind_));
  PutU16(&h, 0);  // flags
  PutU32(&h, kFileHeaderSize);
  PutU32(&h, 0);  // reserved
  PutU64(&h, Checksum64(h));
  sticky_ = sink_->Append(h.data(), h.size());
  return sticky_;
}

Status ImageWriter::BeginSection(std::uint32_t type, std::string_view name, std::string_view attrs,
                                 std::uint8_t flags) {
  return BeginSection(type, name, attrs, flags, opt_.codec);
}

Status ImageWriter::BeginSection(std::uint32_t type, std::string_view name, std::string_view attrs,
                                 std::uint8_t flags, CodecId codec) {
  RETURN_IF_ERROR(sticky_);
  if (!begun_ || in_section_ || finished_) return Internal("ImageWriter: BeginSection out of order");
  if (!CodecAvailable(codec)) {
    return NotSupported("cannot write codec " + std::string(CodecName(codec)) + ": this build has " +
                        AvailableCodecs());
  }
  SectionInfo info;
  info.type = type;
  info.flags = flags;
  info.codec = codec;
  info.name = std::string(name);
  info.attrs = std::string(attrs);
  info.offset = sink_->Position();
  std::string h;
  PutU32(&h, kSectionMagic);
  PutU32(&h, type);
  h.push_back(static_cast<char>(codec));
  h.push_back(static_cast<char>(flags));
  PutU16(&h, 0);
  PutString(&h, name);
  PutString(&h, attrs);
  PutU64(&h, Checksum64(h));
  sticky_ = sink_->Append(h.data(), h.size());
  RETURN_IF_ERROR(sticky_);
  sections_.push_back(std::move(info));
  in_section_ = true;
  section_codec_ = codec;
  section_level_ = opt_.level != 0 ? opt_.level : DefaultLevel(codec);
  if (!frame_buf_)
    frame_buf_.reset(new unsigned char[opt_.frame_size]);  // (the size is fixed at construction)
  frame_fill_ = 0;
  return Status::Ok();
}

void EncodeFrameHeader(unsigned char* h, std::uint32_t raw, std::uint32_t stored_field, std::uint64_t sum) {
  EncodeU32(h, raw);
  EncodeU32(h + 4, stored_field);
  EncodeU64(h + 8, sum);
}

Status ImageWriter::EmitFrame(const void* data, std::size_t size) {
  if (section_codec_ != CodecId::kNone) {
    RETURN_IF_ERROR(Compress(section_codec_, section_level_, data, size, &compressed_));
  } else {
    compressed_.clear();
  }
  return EmitEncoded(data, size, compressed_);
}

Status ImageWriter::EmitEncoded(const void* data, std::size_t size, const std::vector<unsigned char>& packed,
                                const std::uint64_t* raw_checksum) {
  SectionInfo& s = sections_.back();
  const void* stored = data;
  std::size_t stored_size = size;
  std::uint32_t flag = kFrameStoredRaw;
  if (!packed.empty()) {
    stored = packed.data();
    stored_size = packed.size();
    flag = 0;
  }
  unsigned char fh[kFrameHeaderSize];
  EncodeFrameHeader(
      fh, static_cast<std::uint32_t>(size), static_cast<std::uint32_t>(stored_size) | flag,
      raw_checksum != nullptr && packed.empty() ? *raw_checksum : Checksum64(stored, stored_size));
  sticky_ = sink_->Append(fh, sizeof fh);
  RETURN_IF_ERROR(sticky_);
  sticky_ = sink_->Append(stored, stored_size);
  RETURN_IF_ERROR(sticky_);
  s.raw_size += size;
  s.frames += 1;
  return Status::Ok();
}

Status ImageWriter::FlushFrameBuffer() {
  if (frame_fill_ == 0) return Status::Ok();
  Status st = EmitFrame(frame_buf_.get(), frame_fill_);
  frame_fill_ = 0;
  return st;
}

Status ImageWriter::Write(const void* data, std::size_t size) {
  RETURN_IF_ERROR(sticky_);
  if (!in_section_) return Internal("ImageWriter::Write outside a section");
  const auto* p = static_cast<const unsigned char*>(data);
  const std::size_t fs = opt_.frame_size;
  static const std::size_t workers = std::max(1u, std::thread::hardware_concurrency());
  while (size > 0) {
    if (section_codec_ != CodecId::kNone && workers > 1 && frame_fill_ == 0 && size >= 2 * fs) {
      // Whole frames of a compressed section: compress a batch of them on
      // all cores at once, then write them in order.
      std::size_t n = std::min(workers, size / fs);
      std::vector<std::vector<unsigned char>> packed(n);
      std::vector<Status> st(n);
      std::vector<std::thread> threads;
      for (std::size_t i = 1; i < n; ++i) {
        threads.emplace_back(
            [&, i] { st[i] = Compress(section_codec_, section_level_, p + i * fs, fs, &packed[i]); });
      }
      st[0] = Compress(section_codec_, section_level_, p, fs, &packed[0]);
      for (auto& t : threads) t.join();
      for (std::size_t i = 0; i < n; ++i) {
        RETURN_IF_ERROR(st[i]);
        RETURN_IF_ERROR(EmitEncoded(p + i * fs, fs, packed[i]));
      }
      p += n * fs;
      size -= n * fs;
      continue;
    }
    if (frame_fill_ == 0 && size >= fs) {
      // Whole frames straight from the caller's memory: no copy.
      RETURN_IF_ERROR(EmitFrame(p, fs));
      p += fs;
      size -= fs;
      continue;
    }
    std::size_t n = std::min(size, fs - frame_fill_);
    std::memcpy(frame_buf_.get() + frame_fill_, p, n);
    frame_fill_ += n;
    p += n;
    size -= n;
    if (frame_fill_ == fs) RETURN_IF_ERROR(FlushFrameBuffer());
  }
  return Status::Ok();
}

Status ImageWriter::WriteFrameWithChecksum(const void* data, std::size_t size, std::uint64_t checksum) {
  RETURN_IF_ERROR(sticky_);
  if (!in_section_) return Internal("ImageWriter::WriteFrameWithChecksum outside a section");
  if (section_codec_ != CodecId::kNone)
    return Internal("ImageWriter::WriteFrameWithChecksum in a compressed section");
  if (size == 0) return Status::Ok();
  if (size > kMaxFrameRaw) return Internal("ImageWriter::WriteFrameWithChecksum: frame too large");
  RETURN_IF_ERROR(FlushFrameBuffer());
  static const std::vector<unsigned char> kNothing;
  return EmitEncoded(data, size, kNothing, &checksum);
}

Result<std::uint64_t> ImageWriter::BeginDirectFrames() {
  RETURN_IF_ERROR(sticky_);
  if (!in_section_ || in_direct_) return Internal("ImageWriter::BeginDirectFrames out of order");
  if (section_codec_ != CodecId::kNone)
    return Internal("ImageWriter::BeginDirectFrames in a compressed section");
  RETURN_IF_ERROR(FlushFrameBuffer());
  in_direct_ = true;
  direct_start_ = sink_->Position();
  return direct_start_;
}

Status ImageWriter::EndDirectFrames(std::uint64_t frames, std::uint64_t raw, std::uint64_t stored) {
  RETURN_IF_ERROR(sticky_);
  if (!in_direct_) return Internal("ImageWriter::EndDirectFrames without BeginDirectFrames");
  in_direct_ = false;
  if (sink_->Position() != direct_start_ + stored || stored != raw + frames * kFrameHeaderSize) {
    sticky_ = Internal("ImageWriter::EndDirectFrames: the sink did not skip the frames' bytes");
    return sticky_;
  }
  SectionInfo& s = sections_.back();
  s.raw_size += raw;
  s.frames += frames;
  return Status::Ok();
}

Status ImageWriter::EndSection() {
  RETURN_IF_ERROR(sticky_);
  if (!in_section_ || in_direct_) return Internal("ImageWriter::EndSection without a section");
  RETURN_IF_ERROR(FlushFrameBuffer());
  SectionInfo& s = sections_.back();
  unsigned char fh[kFrameHeaderSize];
  EncodeFrameHeader(fh, 0, 0, s.raw_size);  // end frame carries the section's raw length
  sticky_ = sink_->Append(fh, sizeof fh);
  RETURN_IF_ERROR(sticky_);
  s.stored_size = sink_->Position() - s.offset;
  in_section_ = false;
  return Status::Ok();
}

Status ImageWriter::AddSection(std::uint32_t type, std::string_view name, std::string_view attrs,
                               std::string_view payload, std::uint8_t flags) {
  RETURN_IF_ERROR(BeginSection(type, name, attrs, flags));
  RETURN_IF_ERROR(Write(payload));
  return EndSection();
}

Status ImageWriter::Finish() {
  RETURN_IF_ERROR(sticky_);
  if (!begun_ || in_section_ || finished_) return Internal("ImageWriter::Finish out of order");
  std::uint64_t table_offset = sink_->Position();
  std::string t;
  PutU32(&t, kTableMagic);
  PutVarint(&t, sections_.size());
  for (const SectionInfo& s : sections_) {
    PutVarint(&t, s.type);
    t.push_back(static_cast<char>(s.flags));
    t.push_back(static_cast<char>(s.codec));
    PutString(&t, s.name);
    PutString(&t, s.attrs);
    PutVarint(&t, s.offset);
    PutVarint(&t, s.stored_size);
    PutVarint(&t, s.raw_size);
    PutVarint(&t, s.frames);
  }
  std::string tr;
  PutU64(&tr, table_offset);
  PutU64(&tr, t.size());
  PutU64(&tr, Checksum64(t));
  tr.append(reinterpret_cast<const char*>(kTrailerMagic), 8);
  sticky_ = sink_->Append(t.data(), t.size());
  RETURN_IF_ERROR(sticky_);
  sticky_ = sink_->Append(tr.data(), tr.size());
  RETURN_IF_ERROR(sticky_);
  finished_ = true;
  return Status::Ok();
}

const char* ImageKindName(ImageKind kind) {
  switch (kind) {
    case ImageKind::kProgram:
      return "program";
    case ImageKind::kGroup:
      return "group";
    case ImageKind::kProcess:
      return "process";
  }
  return "unknown";
}

Status StringSource::ReadAt(std::uint64_t offset, std::size_t size, void* dst) const {
  if (offset > data_.size() || size > data_.size() - offset) {
    return Corruption(name_ + ": read of " + std::to_string(size) + " bytes at offset " +
                      std::to_string(offset) + " runs past the end (" + std::to_string(data_.size()) +
                      " bytes)");
  }
  if (size != 0) std::memcpy(dst, data_.data() + offset, size);
  return Status::Ok();
}

}  // namespace ckpt::image
