// What the group control channel's authentication needs from the OS: random
// bytes (getrandom / BCryptGenRandom) and small files only their owner can
// read (posix_secure.cc, windows_secure.cc).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/status.h"

namespace ckpt::platform {

// Fills `out` with `size` bytes from the OS's cryptographic random source.
Status RandomBytes(void* out, std::size_t size);

// Writes `data` to `path` and atomically replaces it: through a new file with
// an unpredictable name in the same directory, created exclusively (never an
// existing file, never through a symbolic link) and readable and writable by
// its owner only (POSIX mode 0600; on Windows it inherits the directory's
// ACL, the user's own temporary directory), then renamed over `path`.
Status WritePrivateFile(const std::string& path, std::string_view data);

// Lower-case hexadecimal, and back (false on a malformed string).
std::string HexEncode(std::string_view bytes);
bool HexDecode(std::string_view hex, std::string* bytes);

// Compares in time that depends on the lengths only, not on where the
// contents differ (for secrets).
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace ckpt::platform
