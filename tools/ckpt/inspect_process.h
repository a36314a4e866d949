// `ckpt inspect` for process images (kind 3): decodes the engine's model
// into JSON and prints it. Stateless; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "image/reader.h"
#include "util/status.h"

namespace ckpt::cli {

// Adds "process", "threads", "memory", "vmas" and "fds" to *j.
Status DescribeProcessImage(const image::ImageReader& r, nlohmann::ordered_json* j);
void PrintProcessImage(const nlohmann::ordered_json& j);

}  // namespace ckpt::cli
