// The raw-write baseline of the engine benchmarks (POSIX): the bytes written
// to a new file the way an image is, timed.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "bench_util.h"

namespace ckpt::bench {

// Writes `bytes` of `buf` to `path` under a temporary name renamed into
// place, in 256 KiB write() calls (the fastest size here,
// docs/performance.md); with `gaps`, in the image's layout: 16 bytes of frame
// header before each MiB, so the writes do not start on page boundaries and
// the page cache uses single pages instead of large folios. The previous file
// is removed and dirty pages synced before the clock starts (freeing a GiB of
// written-back file takes ~0.35 s on the test VM). Returns seconds, or -1.
inline double RawWrite(const std::string& path, const unsigned char* buf, std::size_t bytes, bool gaps,
                       bool fsync_it) {
  const std::size_t chunk = 256u << 10;
  static const unsigned char header[16] = {};
  std::string tmp = path + ".tmp";
  unlink(path.c_str());
  ::sync();
  double t = Now();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  for (std::size_t off = 0; off < bytes; off += chunk) {
    if ((gaps && off % (1u << 20) == 0 && write(fd, header, sizeof header) < 0) ||
        write(fd, buf + off, std::min(chunk, bytes - off)) < 0) {
      close(fd);
      return -1;
    }
  }
  if (fsync_it) fsync(fd);
  close(fd);
  rename(tmp.c_str(), path.c_str());
  return Now() - t;
}

}  // namespace ckpt::bench
