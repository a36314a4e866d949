// Byte strings in nlohmann::json values, losslessly (the convention of
// util/utf8.h's JsonBytes): valid UTF-8 as a JSON string, anything else as an
// array of its byte values (0-255). Stateless; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "util/utf8.h"

namespace ckpt {

template <class Json = nlohmann::json>
Json BytesToJson(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  Json a = Json::array();
  for (char c : s) a.push_back(static_cast<unsigned char>(c));
  return a;
}

// False (and `out` unchanged) unless `v` is a string or an array of byte values.
template <class Json>
bool JsonToBytes(const Json& v, std::string* out) {
  if (v.is_string()) {
    *out = v.template get<std::string>();
    return true;
  }
  if (!v.is_array()) return false;
  std::string s;
  for (const auto& b : v) {
    if (!b.is_number_unsigned() || b.template get<unsigned>() > 255) return false;
    s.push_back(static_cast<char>(b.template get<unsigned>()));
  }
  *out = std::move(s);
  return true;
}

}  // namespace ckpt
