#include "lib/section_io.h"

#include <algorithm>
#include <cstring>

namespace ckpt::lib {

SectionWriter::SectionWriter(image::ImageWriter* w) : w_(w), buf_(new unsigned char[kBuf]) {
  pos_ = buf_.get();
  end_ = buf_.get() + kBuf;
}

SectionWriter::SectionWriter(image::Sink* sink) : sink_(sink), buf_(new unsigned char[kBuf]) {
  pos_ = buf_.get();
  end_ = buf_.get() + kBuf;
}

Status SectionWriter::Put(const void* p, std::size_t n) {
  return sink_ != nullptr ? sink_->Append(p, n) : w_->Write(p, n);
}

void SectionWriter::Flush() {
  std::size_t n = static_cast<std::size_t>(pos_ - buf_.get());
  pos_ = buf_.get();
  if (n == 0 || !status_.ok()) return;
  status_ = Put(buf_.get(), n);
  if (!status_.ok()) SetError(status_.message());
}

void SectionWriter::Overflow(const void* p, std::size_t n) {
  Flush();
  if (n >= kBuf) {
    Bulk(p, n);
    return;
  }
  std::memcpy(pos_, p, n);
  pos_ += n;
}

void SectionWriter::Bulk(const void* p, std::size_t n) {
  if (n < 4096) {
    Bytes(p, n);
    return;
  }
  Flush();
  if (!status_.ok()) return;
  status_ = Put(p, n);
  if (!status_.ok()) SetError(status_.message());
}

Status SectionWriter::Finish() {
  Flush();
  return status_;
}

SectionReader::SectionReader(image::SectionStream* s) : s_(s), buf_(new unsigned char[kBuf]) {
  pos_ = end_ = buf_.get();
}

std::uint64_t SectionReader::Remaining() const {
  return s_->remaining() + static_cast<std::uint64_t>(end_ - pos_);
}

bool SectionReader::Refill() {
  auto got = s_->ReadSome(buf_.get(), kBuf);
  if (!got.ok()) {
    Fail(got.status().message());
    return false;
  }
  std::size_t n = *got;
  if (n == 0) return false;
  pos_ = buf_.get();
  end_ = buf_.get() + n;
  return true;
}

bool SectionReader::Underflow(void* p, std::size_t n) {
  auto* out = static_cast<unsigned char*>(p);
  if (!ok()) {
    std::memset(p, 0, n);
    return false;
  }
  while (n > 0) {
    std::size_t avail = static_cast<std::size_t>(end_ - pos_);
    if (avail == 0) {
      if (n >= kBuf && n <= s_->remaining()) return Bulk(out, n);
      if (!Refill()) {
        std::memset(out, 0, n);
        if (ok()) Fail("the value's data ends early");
        return false;
      }
      continue;
    }
    std::size_t k = std::min(avail, n);
    std::memcpy(out, pos_, k);
    pos_ += k;
    out += k;
    n -= k;
  }
  return true;
}

void SectionReader::FinishSection() {
  if (!ok()) return;
  std::uint64_t left = static_cast<std::uint64_t>(end_ - pos_);
  pos_ = end_;
  std::uint64_t skipped = 0;
  Status end = s_->Drain(&skipped);
  if (!end.ok()) {
    Fail(end.message());
    return;
  }
  if (left + skipped != 0) Fail(std::to_string(left + skipped) + " bytes are left over after decoding it");
}

bool SectionReader::Bulk(void* p, std::size_t n) {
  auto* out = static_cast<unsigned char*>(p);
  std::size_t avail = static_cast<std::size_t>(end_ - pos_);
  if (n <= avail || !ok()) return Bytes(p, n);
  std::memcpy(out, pos_, avail);
  pos_ = end_;
  out += avail;
  n -= avail;
  if (n > s_->remaining()) {
    std::memset(out, 0, n);
    Fail("the value's data ends early");
    return false;
  }
  Status st = s_->Read(out, n);
  if (!st.ok()) {
    Fail(st.message());
    return false;
  }
  return true;
}

}  // namespace ckpt::lib
