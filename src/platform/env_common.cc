// Env helpers that only use the Env interface.
#include <cstring>
#include <string>

#include "platform/env.h"
#include "platform/process.h"

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
  std::string tmp = path + ".tmp";
  {
    ASSIGN_OR_RETURN(auto f, env->NewWritableFile(tmp));
    Status st = f->Append(data.data(), data.size());
    if (st.ok() && durable) st = f->Sync();
    Status cl = f->Close();
    if (st.ok()) st = cl;
    if (!st.ok()) {
      env->RemoveFile(tmp).IgnoreError();
      return st;
    }
  }
  Status st = env->RenameFile(tmp, path);
  if (!st.ok()) {
    env->RemoveFile(tmp).IgnoreError();
    return st;
  }
  return durable ? env->SyncDir(DirName(path)) : Status::Ok();
}

Result<int> RunProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  ASSIGN_OR_RETURN(auto child, ChildProcess::Start(argv, env));
  return child->Wait();
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
