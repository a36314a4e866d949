// Decides whether data described by an image's TypeDesc can be loaded into a
// program's type (ckpt::detail::MatchType in ckpt/serialize.hpp does the work
// and records how). Integers convert between widths of the same signedness
// (checked per value when loading), float widens to double;
// vector/deque/list, map/unordered_map and set/unordered_set are
// interchangeable; a struct may gain, lose, rename and reorder fields
// (docs/api.md, "State that evolves"); everything else must match exactly.
// Stateless; thread-safe.
#pragma once

#include <string>

#include "ckpt/serialize.hpp"

namespace ckpt::state {

// True if MatchType would accept it (on a copy of `image`).
bool Compatible(const TypeDesc& image, const TypeDesc& program);

// "X in the image, the program declares Y", and MatchType's `why` in
// brackets when it names a part (a field, a version) the two types do not
// already show.
std::string Mismatch(const TypeDesc& image, const TypeDesc& program, const std::string& why);

}  // namespace ckpt::state
