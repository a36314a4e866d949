// What the group control channel's authentication needs: random bytes from
// the OS (getrandom / BCryptGenRandom: posix_secure.cc, windows_secure.cc),
// hexadecimal and a constant-time comparison (secure_common.cc). The secret's
// file is written by WriteFileAtomic (env.h), owner-only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/status.h"

namespace ckpt::platform {

// Fills `out` with `size` bytes from the OS's cryptographic random source.
Status RandomBytes(void* out, std::size_t size);

// Lower-case hexadecimal, and back (false on a malformed string).
std::string HexEncode(std::string_view bytes);
bool HexDecode(std::string_view hex, std::string* bytes);

// Compares in time that depends on the lengths only, not on where the
// contents differ (for secrets).
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace ckpt::platform
