// Env helpers that only use the Env interface.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "platform/env.h"
#include "platform/process.h"
#include "platform/secure.h"

namespace ckpt::platform {

BufferedWritableFile::BufferedWritableFile() : buf_(new char[kBufSize]) {}

Status BufferedWritableFile::Append(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  pos_ += size;
  if (fill_ + size <= kBufSize) {
    std::memcpy(buf_.get() + fill_, p, size);
    fill_ += size;
    return Status::Ok();
  }
  RETURN_IF_ERROR(FlushBuffer());
  if (size >= kBufSize) return WriteRaw(p, size);
  std::memcpy(buf_.get(), p, size);
  fill_ = size;
  return Status::Ok();
}

Status BufferedWritableFile::FlushBuffer() {
  if (fill_ == 0) return Status::Ok();
  Status st = WriteRaw(buf_.get(), fill_);
  fill_ = 0;
  return st;
}

Result<std::string> ReadFileToString(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  std::string data(static_cast<std::size_t>(file->Size()), '\0');
  RETURN_IF_ERROR(file->ReadAt(0, data.size(), data.data()));
  return data;
}

Status WriteFileAtomic(Env* env, const std::string& path, const std::string& data, bool durable) {
  ASSIGN_OR_RETURN(auto f, env->NewTempFile(DirName(path), BaseName(path), 0600));
  RETURN_IF_ERROR(f->Append(data.data(), data.size()));
  if (durable) RETURN_IF_ERROR(f->Sync());
  ASSIGN_OR_RETURN(bool committed, f->Commit(path, /*replace=*/true));
  if (!committed) return Internal("rename over " + path + " did not replace it");
  return durable ? env->SyncDir(DirName(path)) : Status::Ok();
}

Status CheckImageMode(unsigned mode) {
  char m[16];
  std::snprintf(m, sizeof m, "%04o", mode);
  if (mode > 0777)
    return InvalidArgument(std::string("image mode ") + m + " is not permission bits (0600 to 0777)");
  if ((mode & 0600) != 0600)
    return InvalidArgument(std::string("image mode ") + m +
                           " would not let the owner read and write the image");
  return Status::Ok();
}

Result<unsigned> ParseFileMode(const std::string& text) {
  unsigned v = 0;
  bool ok = !text.empty() && text.size() <= 5;
  for (char c : text) {
    if (c < '0' || c > '7') {
      ok = false;
      break;
    }
    v = v * 8 + static_cast<unsigned>(c - '0');
  }
  if (!ok)
    return InvalidArgument("file mode '" + text + "' is not an octal mode from 0600 to 0777 (e.g. 0640)");
  RETURN_IF_ERROR(CheckImageMode(v));
  return v;
}

std::string RandomHex16() {
  unsigned char b[8] = {};
  if (!RandomBytes(b, sizeof b).ok()) {
    // Never seen; the name must still differ from the last one (files are
    // created exclusively, so a guessed name is refused, not followed).
    static std::atomic<std::uint64_t> counter{0};
    std::uint64_t x = static_cast<std::uint64_t>(Env::Default()->NowNanos()) ^ (counter.fetch_add(1) << 48);
    for (auto& c : b) {
      c = static_cast<unsigned char>(x);
      x >>= 8;
    }
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(b), sizeof b));
}

bool IsTempFileName(const std::string& name, const std::string& prefix) {
  const std::size_t tail = 1 + 16 + 4;  // ".<16 hex>.tmp"
  if (name.size() < prefix.size() + tail || name.compare(0, prefix.size(), prefix) != 0) return false;
  std::size_t t = name.size() - tail;
  if (name[t] != '.' || name.compare(name.size() - 4, 4, ".tmp") != 0) return false;
  for (std::size_t i = t + 1; i < t + 17; ++i) {
    char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of("/\\");
  if (pos == std::string::npos) return ".";
  if (pos == 0) return path.substr(0, 1);
  return path.substr(0, pos);
}

std::string BaseName(const std::string& path) {
  auto pos = path.find_last_of("/\\");
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir == ".") return name;
  char last = dir.back();
  if (last == '/' || last == '\\') return dir + name;
  return dir + "/" + name;
}

}  // namespace ckpt::platform
