// UTF-8 validation and the lossless JSON form of byte strings. Paths,
// arguments and image strings are bytes; JSON text must be UTF-8. A byte
// string that is valid UTF-8 is written as a JSON string; any other is written
// as an array of its byte values (0-255), the convention of systemd's journal
// export (docs/cli.md, "JSON output"). Stateless; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace ckpt {

// True if `s` is well-formed UTF-8: no overlong forms, no surrogates, nothing
// above U+10FFFF.
bool IsValidUtf8(std::string_view s);

// The JSON text of `s` as a string, without the quotes: `"`, `\` and control
// characters escaped. `s` must be valid UTF-8 for the result to be valid JSON.
std::string JsonEscape(std::string_view s);

// The JSON text of the byte string `s`: "..." when it is valid UTF-8, else
// [b0, b1, ...] with every byte as a number.
std::string JsonBytes(std::string_view s);

}  // namespace ckpt
