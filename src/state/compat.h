// Decides whether data described by an image's TypeDesc can be loaded into a
// program's type, and says why not. Integers convert between widths of the
// same signedness (checked per value when loading); vector/deque/list,
// map/unordered_map and set/unordered_set are interchangeable; everything else
// must match exactly. Stateless; thread-safe.
#pragma once

#include <string>

#include "ckpt/serialize.hpp"

namespace ckpt::state {

bool Compatible(const TypeDesc& image, const TypeDesc& program);

}  // namespace ckpt::state
