#include <cstdio>

#include "command.h"
#include "lib/program_image.h"

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
  std::fprintf(stderr, "ckpt: error: %s\n", st.message().c_str());
  return ExitCodeFor(st);
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

}  // namespace ckpt::cli
