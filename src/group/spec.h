// Group spec files for `ckpt run --spec FILE`: one member per line, the
// command and its arguments separated by blanks ("double quotes" group words
// with blanks); '#' starts a comment; "3x COMMAND" runs three members of it.
// Stateless; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace ckpt::group {

Result<std::vector<std::vector<std::string>>> ParseSpec(std::string_view text);

}  // namespace ckpt::group
