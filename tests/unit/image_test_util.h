// Images for the container's unit tests (image_test.cc, image_streamed_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "image/writer.h"

namespace ckpt::image {

// n bytes that compress (runs) but are not all alike (random bytes between).
inline std::string Pattern(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i % 251 < 200 ? (i / 7) & 0xff : rng());
  return s;
}

inline std::string BuildImage(CodecId codec, std::uint32_t frame, const std::vector<std::string>& payloads) {
  StringSink sink;
  WriterOptions o;
  o.codec = codec;
  o.frame_size = frame;
  ImageWriter w(&sink, ImageKind::kProgram, o);
  EXPECT_TRUE(w.Begin().ok());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_TRUE(
        w.BeginSection(static_cast<std::uint32_t>(i + 1), "s" + std::to_string(i), "attr" + std::to_string(i))
            .ok());
    // Write in uneven pieces to exercise buffering and the direct path.
    const std::string& p = payloads[i];
    std::size_t pos = 0, step = 1;
    while (pos < p.size()) {
      std::size_t n = std::min(step, p.size() - pos);
      EXPECT_TRUE(w.Write(p.data() + pos, n).ok());
      pos += n;
      step = step * 3 + 1;
    }
    EXPECT_TRUE(w.EndSection().ok());
  }
  EXPECT_TRUE(w.Finish().ok());
  return sink.buffer();
}

}  // namespace ckpt::image
