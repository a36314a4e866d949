// The --ckpt-* options of a Session (lib/options.h).
#include "lib/options.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ckpt/ckpt.hpp"

namespace ckpt::lib {

namespace {

const char* const kHelp =
    "ckpt options (removed from the program's arguments; each also read from an environment\n"
    "variable, e.g. CKPT_DIR):\n"
    "  --ckpt-dir DIR        where checkpoint images are written (default: .)\n"
    "  --ckpt-resume PATH    resume from an image file, or from the newest image of this program\n"
    "                        in a directory; 'auto' resumes from the newest image of this program\n"
    "                        in --ckpt-dir if there is one and starts fresh otherwise\n"
    "  --ckpt-every SECONDS  write a checkpoint periodically (at the next safepoint)\n"
    "  --ckpt-keep K         keep the newest K images of this program in DIR (default: 2)\n"
    "  --ckpt-codec C        none, zstd or zlib (default: none)\n"
    "  --ckpt-level N        compression level (default: the codec's)\n"
    "  --ckpt-at N           checkpoint at this run's N-th safepoint and continue\n"
    "  --ckpt-stop-at N      checkpoint at this run's N-th safepoint and exit with status 75\n"
    "  --ckpt-name NAME      image name prefix (default: the program's name)\n"
    "  --ckpt-image-mode M   permission bits of new images, octal (default: 0600, owner only)\n"
    "  --ckpt-page-cache     write images through the page cache (default: straight to the\n"
    "                        disk where the file system can, Linux O_DIRECT)\n"
    "  --ckpt-quiet          no progress messages on stderr\n"
    "  --ckpt-no-listen      ignore `ckpt checkpoint PID` requests\n"
    "  --ckpt-help           show this help and exit\n";

std::uint64_t ParseUint(const Options& o, const std::string& what, const std::string& v) {
  char* end = nullptr;
  unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || v[0] == '-')
    OptionUsageError(o, what + " wants a whole number, got '" + v + "'");
  return x;
}
unsigned ParseMode(const Options& o, const std::string& what, const std::string& v) {
  auto m = platform::ParseFileMode(v);
  if (!m.ok()) OptionUsageError(o, what + ": " + m.status().message());
  return *m;
}
double ParseDouble(const Options& o, const std::string& what, const std::string& v) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(x >= 0))
    OptionUsageError(o, what + " wants a number of seconds, got '" + v + "'");
  return x;
}

}  // namespace

void OptionUsageError(const Options& o, const std::string& m) {
  if (o.throw_on_error) throw Error(m);
  (void)std::fprintf(stderr, "ckpt: %s\n%s", m.c_str(), kHelp);
  std::exit(2);
}

void ApplyEnvOptions(platform::Env* env, Options* o) {
  auto get = [&](const char* n) { return env->GetEnv(n); };
  if (auto v = get("CKPT_DIR"); !v.empty()) o->dir = v;
  if (auto v = get("CKPT_RESUME"); !v.empty()) o->resume = v;
  if (auto v = get("CKPT_EVERY"); !v.empty()) o->every_seconds = ParseDouble(*o, "CKPT_EVERY", v);
  if (auto v = get("CKPT_KEEP"); !v.empty()) o->keep = static_cast<int>(ParseUint(*o, "CKPT_KEEP", v));
  if (auto v = get("CKPT_CODEC"); !v.empty()) o->codec = v;
  if (auto v = get("CKPT_LEVEL"); !v.empty()) o->level = static_cast<int>(ParseUint(*o, "CKPT_LEVEL", v));
  if (auto v = get("CKPT_AT"); !v.empty()) o->at = ParseUint(*o, "CKPT_AT", v);
  if (auto v = get("CKPT_STOP_AT"); !v.empty()) o->stop_at = ParseUint(*o, "CKPT_STOP_AT", v);
  if (auto v = get("CKPT_NAME"); !v.empty()) o->name = v;
  if (auto v = get("CKPT_IMAGE_MODE"); !v.empty()) o->image_mode = ParseMode(*o, "CKPT_IMAGE_MODE", v);
  if (auto v = get("CKPT_QUIET"); !v.empty() && v != "0") o->quiet = true;
  if (auto v = get("CKPT_PAGE_CACHE"); !v.empty() && v != "0") o->page_cache = true;
  if (auto v = get("CKPT_LISTEN"); v == "0") o->listen = false;
}

void ParseOptionArgs(int& argc, char** argv, Options* o) {
  if (argc <= 0 || argv == nullptr) return;  // no arguments, not even the program's name
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {  // everything after belongs to the program
      for (; i < argc; ++i) argv[out++] = argv[i];
      break;
    }
    if (a.rfind("--ckpt-", 0) != 0) {
      argv[out++] = argv[i];
      continue;
    }
    std::string key = a, val;
    bool has_val = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      key = a.substr(0, eq);
      val = a.substr(eq + 1);
      has_val = true;
    }
    auto need = [&]() -> std::string {
      if (has_val) return val;
      if (i + 1 >= argc) OptionUsageError(*o, key + " needs a value");
      return argv[++i];
    };
    if (key == "--ckpt-help") {
      (void)std::fputs(kHelp, stdout);
      std::exit(0);
    } else if (key == "--ckpt-dir")
      o->dir = need();
    else if (key == "--ckpt-resume")
      o->resume = need();
    else if (key == "--ckpt-every")
      o->every_seconds = ParseDouble(*o, key, need());
    else if (key == "--ckpt-keep")
      o->keep = static_cast<int>(ParseUint(*o, key, need()));
    else if (key == "--ckpt-codec")
      o->codec = need();
    else if (key == "--ckpt-level")
      o->level = static_cast<int>(ParseUint(*o, key, need()));
    else if (key == "--ckpt-at")
      o->at = ParseUint(*o, key, need());
    else if (key == "--ckpt-stop-at")
      o->stop_at = ParseUint(*o, key, need());
    else if (key == "--ckpt-name")
      o->name = need();
    else if (key == "--ckpt-image-mode")
      o->image_mode = ParseMode(*o, key, need());
    else if (key == "--ckpt-quiet")
      o->quiet = true;
    else if (key == "--ckpt-page-cache")
      o->page_cache = true;
    else if (key == "--ckpt-no-listen")
      o->listen = false;
    else
      OptionUsageError(*o, "unknown option " + key);
  }
  argv[out] = nullptr;
  argc = out;
}

}  // namespace ckpt::lib
