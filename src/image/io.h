// Byte sinks and sources the image container writes to and reads from. The
// container knows nothing about files; src/platform implements these for files
// and src/net for sockets. Implementations are not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace ckpt::image {

// An append-only byte sink.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Append(const void* data, std::size_t size) = 0;
  // Bytes appended so far.
  virtual std::uint64_t Position() const = 0;
};

// A source readable at any offset.
class RandomAccessSource {
 public:
  virtual ~RandomAccessSource() = default;
  // Reads exactly `size` bytes at `offset`; a short read is an error.
  virtual Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const = 0;
  virtual std::uint64_t Size() const = 0;
  // A name for messages ("/path/to/image").
  virtual const std::string& Name() const = 0;
};

// Sink that appends to a string (tests, small images, network buffers).
class StringSink : public Sink {
 public:
  Status Append(const void* data, std::size_t size) override {
    buf_.append(static_cast<const char*>(data), size);
    return Status::Ok();
  }
  std::uint64_t Position() const override { return buf_.size(); }
  std::string& buffer() { return buf_; }

 private:
  std::string buf_;
};

// Source over a string held by the caller.
class StringSource : public RandomAccessSource {
 public:
  explicit StringSource(std::string data, std::string name = "<memory>")
      : data_(std::move(data)), name_(std::move(name)) {}
  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override;
  std::uint64_t Size() const override { return data_.size(); }
  const std::string& Name() const override { return name_; }

 private:
  std::string data_;
  std::string name_;
};

}  // namespace ckpt::image
