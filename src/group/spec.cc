#include "group/spec.h"

#include <cstdlib>

namespace ckpt::group {

Result<std::vector<std::vector<std::string>>> ParseSpec(std::string_view text) {
  std::vector<std::vector<std::string>> out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    std::vector<std::string> words;
    std::string cur;
    bool in_word = false, quoted = false;
    for (char c : line) {
      if (quoted) {
        if (c == '"')
          quoted = false;
        else
          cur.push_back(c);
        continue;
      }
      if (c == '#') break;
      if (c == '"') {
        quoted = in_word = true;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        if (in_word) words.push_back(std::move(cur));
        cur.clear();
        in_word = false;
      } else {
        cur.push_back(c);
        in_word = true;
      }
    }
    if (quoted) return InvalidArgument("spec line " + std::to_string(line_no) + ": unterminated quote");
    if (in_word) words.push_back(std::move(cur));
    if (words.empty()) continue;
    std::size_t repeat = 1;
    const std::string& w0 = words[0];
    if (w0.size() >= 2 && w0.back() == 'x' && w0.find_first_not_of("0123456789") == w0.size() - 1) {
      repeat = std::strtoul(w0.c_str(), nullptr, 10);
      words.erase(words.begin());
      if (repeat == 0 || repeat > 1024 || words.empty())
        return InvalidArgument("spec line " + std::to_string(line_no) + ": bad repeat count '" + w0 + "'");
    }
    for (std::size_t i = 0; i < repeat; ++i) out.push_back(words);
  }
  if (out.empty()) return InvalidArgument("the spec lists no members");
  return out;
}

}  // namespace ckpt::group
