#include <cstdarg>
#include <cstdio>
#include <vector>

#include "command.h"
#include "lib/program_image.h"
#include "util/json_bytes.h"
#include "util/utf8.h"

namespace ckpt::cli {

Result<std::unique_ptr<image::ImageReader>> OpenImage(const std::string& path, std::string* resolved) {
  platform::Env* env = platform::Env::Default();
  std::string p = path;
  if (env->IsDirectory(path)) {
    ASSIGN_OR_RETURN(auto list, lib::ListImages(env, path, ""));
    // A `ckpt dump` directory holds one process image under a fixed name.
    std::string process = platform::JoinPath(path, "process.ckpt");
    if (list.empty() && env->FileExists(process)) list.push_back(process);
    if (list.empty()) {
      return NotFound("no checkpoint images (*.NNNNNN.ckpt or process.ckpt) in directory " + path);
    }
    p = list.front();
  }
  if (resolved != nullptr) *resolved = p;
  ASSIGN_OR_RETURN(auto src, env->NewRandomAccessFile(p));
  return image::ImageReader::Open(std::move(src));
}

int ExitCodeFor(const Status& st) {
  switch (st.code()) {
    case Code::kOk:
      return kExitOk;
    case Code::kCorruption:
    case Code::kNotSupported:
    case Code::kFailedPrecondition:
    case Code::kOutOfRange:
      return kExitBadImage;
    case Code::kInvalidArgument:
      return kExitBadImage;
    default:
      return kExitFailure;
  }
}

int ReportError(const Status& st) {
  std::fflush(stdout);
  // Messages quote image contents and file names: no terminal controls.
  std::string m, line;
  for (char c : st.message() + "\n") {
    if (c != '\n') {
      line.push_back(c);
      continue;
    }
    m += (m.empty() ? "" : "\n") + Printable(line);
    line.clear();
  }
  std::fprintf(stderr, "ckpt: error: %s\n", m.c_str());
  return ExitCodeFor(st);
}

void AddImageModeOption(CLI::App* c, unsigned* mode) {
  c->add_option_function<std::string>(
      "--image-mode",
      [mode](const std::string& v) {
        auto m = platform::ParseFileMode(v);
        if (!m.ok()) throw CLI::ValidationError("--image-mode", m.status().message());
        *mode = *m;
      },
      "Permission bits of new images, octal (default 0600: only the owner may read them)");
}

std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [&](unsigned char c) {
    char b[8];
    std::snprintf(b, sizeof b, "\\x%02x", c);
    out += b;
  };
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      hex(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence passes, except the C1 controls U+0080..U+009F.
    std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    bool ok = n != 0 && i + n <= s.size();
    for (std::size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok && n == 3) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogates
    }
    if (ok && n == 4) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (ok && n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      char b[10];
      std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned char>(s[i + 1]));
      out += b;
      i += 2;
      continue;
    }
    if (!ok) {
      hex(c);
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

void PrintText(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::vector<char> buf(n > 0 ? static_cast<std::size_t>(n) + 1 : 1, '\0');
  if (n > 0) std::vsnprintf(buf.data(), buf.size(), fmt, ap2);
  va_end(ap2);
  std::string_view text(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
  std::string out;
  while (!text.empty()) {
    std::size_t e = text.find('\n');
    out += Printable(text.substr(0, e));
    if (e == std::string_view::npos) break;
    out.push_back('\n');
    text.remove_prefix(e + 1);
  }
  std::fputs(out.c_str(), stdout);
}

std::string HumanBytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

namespace {

// Object keys cannot be arrays: invalid bytes become \xHH, and a backslash
// in such a key is doubled so that the form can be undone.
std::string KeyText(const std::string& k) {
  if (IsValidUtf8(k)) return k;
  std::string o;
  for (unsigned char c : k) {
    if (c == '\\') {
      o += "\\\\";
    } else if (c < 0x80) {
      o.push_back(static_cast<char>(c));
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    }
  }
  // Valid multi-byte characters were escaped too: the key stays unambiguous.
  return o;
}

template <typename J>
J ToValidUtf8(const J& j) {
  if (j.is_string()) {
    const auto& s = j.template get_ref<const std::string&>();
    if (IsValidUtf8(s)) return j;
    J bytes = J::array();
    for (unsigned char c : s) bytes.push_back(static_cast<int>(c));
    return bytes;
  }
  if (j.is_array()) {
    J out = J::array();
    for (const auto& e : j) out.push_back(ToValidUtf8(e));
    return out;
  }
  if (j.is_object()) {
    J out = J::object();
    for (auto it = j.begin(); it != j.end(); ++it) out[KeyText(it.key())] = ToValidUtf8(it.value());
    return out;
  }
  return j;
}

// dump(2) puts every array element on a line of its own; arrays of plain
// integers (byte strings above all) read better on one line.
std::string CompactIntegerArrays(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  bool in_string = false;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < in.size()) {
        out.push_back(in[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    if (c != '[') {
      out.push_back(c);
      continue;
    }
    std::size_t j = i + 1;
    std::string items;
    bool digits = false, ok = true;
    for (; j < in.size() && in[j] != ']'; ++j) {
      char d = in[j];
      if (d >= '0' && d <= '9') {
        items.push_back(d);
        digits = true;
      } else if (d == ',') {
        items += ", ";
      } else if (d != ' ' && d != '\n') {
        ok = false;
        break;
      }
    }
    if (!ok || !digits || j == in.size()) {
      out.push_back(c);
      continue;
    }
    out += "[" + items + "]";
    i = j;
  }
  return out;
}

}  // namespace

void PrintJson(const nlohmann::ordered_json& j) {
  std::printf("%s\n", CompactIntegerArrays(ToValidUtf8(j).dump(2)).c_str());
}

void PrintJson(const nlohmann::json& j) {
  std::printf("%s\n", CompactIntegerArrays(ToValidUtf8(j).dump(2)).c_str());
}

std::string JsonBytesValue(const nlohmann::json& obj, const char* key, const std::string& def) {
  auto it = obj.find(key);
  std::string out;
  if (it == obj.end() || !JsonToBytes(*it, &out)) return def;
  return out;
}

}  // namespace ckpt::cli
