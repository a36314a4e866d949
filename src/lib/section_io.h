// Adapters between the value encoders (ckpt::Writer/Reader) and one image
// section (ImageWriter / SectionStream). Large contiguous data bypasses the
// buffers. One adapter per thread.
#pragma once

#include <memory>

#include "ckpt/serialize.hpp"
#include "image/reader.h"
#include "image/writer.h"

namespace ckpt::lib {

class SectionWriter final : public Writer {
 public:
  explicit SectionWriter(image::ImageWriter* w);
  // Writes to a plain byte sink instead of an image section.
  explicit SectionWriter(image::Sink* sink);
  void Bulk(const void* p, std::size_t n) override;
  // Flushes buffered bytes; returns the first error seen.
  Status Finish();

 protected:
  void Overflow(const void* p, std::size_t n) override;

 private:
  void Flush();
  Status Put(const void* p, std::size_t n);
  static constexpr std::size_t kBuf = std::size_t{64} * 1024;
  image::ImageWriter* w_ = nullptr;
  image::Sink* sink_ = nullptr;
  std::unique_ptr<unsigned char[]> buf_;
  Status status_;
};

class SectionReader final : public Reader {
 public:
  explicit SectionReader(image::SectionStream* s);
  bool Bulk(void* p, std::size_t n) override;
  // Exact for a whole image; for a section still being written, an upper bound.
  std::uint64_t Remaining() const override;
  // After the value: reads the section to its end marker (checking it) and
  // fails the reader if any bytes were left over.
  void FinishSection();

 protected:
  bool Underflow(void* p, std::size_t n) override;

 private:
  bool Refill();
  static constexpr std::size_t kBuf = std::size_t{64} * 1024;
  image::SectionStream* s_;
  std::unique_ptr<unsigned char[]> buf_;
};

}  // namespace ckpt::lib
