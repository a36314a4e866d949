// Decodes a value from its TypeDesc alone, without the program's C++ type:
// `ckpt verify` checks that every variable decodes, `ckpt inspect --values`
// renders small ones, and the fuzzer drives it with arbitrary bytes.
// Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <string>

#include "ckpt/serialize.hpp"
#include "util/status.h"

namespace ckpt::state {

// Reads one value of type `d`; appends a rendering of it to *out unless out
// is null (at most `limit` characters, then "..."). Errors are the reader's.
void WalkValue(Reader& r, const TypeDesc& d, std::string* out, std::size_t limit, int depth = 0);

}  // namespace ckpt::state
