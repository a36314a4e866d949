// Small helpers for building messages. Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt {

// "a, b, c" — or, for a long list, its first `max` items and "and N more":
// an error about a million variables stays one readable line.
inline std::string CapList(const std::vector<std::string>& items, std::size_t max = 10) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < max; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > max) out += " and " + std::to_string(items.size() - max) + " more";
  return out;
}

// The same as lines: "\n  a\n  b" ... "\n  and N more".
inline std::string CapLines(const std::vector<std::string>& items, std::size_t max = 10) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < max; ++i) out += "\n  " + items[i];
  if (items.size() > max) out += "\n  and " + std::to_string(items.size() - max) + " more";
  return out;
}

// The words of a command line given as one string, split at spaces and tabs
// (no quoting): "wine C:\\heat.exe" -> {"wine", "C:\\heat.exe"}.
inline std::vector<std::string> SplitWords(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace ckpt
