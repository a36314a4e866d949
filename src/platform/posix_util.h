// POSIX-only helpers shared by the POSIX Env and the Linux engine.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>

#include "image/io.h"
#include "util/status.h"

namespace ckpt::platform {

// "op object: strerror(err)" as a Status of a fitting code.
Status PosixError(const std::string& op, const std::string& object, int err);
// Opens `path` read-only (O_CLOEXEC) and fstat()s what was opened, so that
// what is checked is what is read. The caller owns the descriptor.
Result<int> OpenForReading(const std::string& path, struct stat* st);
// A source reading the open file `fd` (owned: closed with the source) of
// `size` bytes with pread; `path` names it in messages.
std::unique_ptr<image::RandomAccessSource> NewFdSource(std::string path, int fd, std::uint64_t size);
// Reads exactly `size` bytes at `offset` of `fd` (pread, EINTR retried); a
// file that ends first is Corruption ("shrank while being read").
Status PreadFull(int fd, std::uint64_t offset, std::size_t size, void* dst, const std::string& path);
// The real-time signal a ckpt session listens on for checkpoint requests.
int CheckpointSignal();

}  // namespace ckpt::platform
