#include "engine/pipes.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <string>

#include "engine/proc.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

// Contents of a pipe without consuming them: tee into a pipe of our own.
Result<std::string> PeekPipe(pid_t pid, int fd) {
  std::string path = ProcPath(pid, "fd/" + std::to_string(fd));
  int in = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (in < 0) return PosixError("open", path, errno);
  int cap = ::fcntl(in, F_GETPIPE_SZ);
  if (cap <= 0) cap = 65536;
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    int e = errno;
    ::close(in);
    return PosixError("pipe2", "", e);
  }
  ::fcntl(p[1], F_SETPIPE_SZ, cap);
  ssize_t n = ::tee(in, p[1], static_cast<std::size_t>(cap), SPLICE_F_NONBLOCK);
  int e = errno;
  ::close(in);
  ::close(p[1]);
  if (n < 0 && e != EAGAIN) {
    ::close(p[0]);
    return PosixError("tee", path, e);
  }
  auto data = ReadAllFd(p[0], "pipe copy");
  ::close(p[0]);
  return data;
}

Status WriteAll(int fd, const std::string& data, const std::string& what) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("write", what, errno);
    off += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

std::string FifoBlobName(const FileRef& fr) {
  return "fifo." + std::to_string(fr.dev) + "." + std::to_string(fr.ino);
}

Status DumpPipes(const std::vector<pid_t>& pids, const std::vector<ProcessModel*>& models,
                 const std::set<std::uint64_t>& external, std::vector<Blob>* blobs) {
  std::set<std::uint64_t> stored;
  std::set<std::string> fifos;
  for (std::size_t i = 0; i < models.size(); ++i) {
    for (auto& f : models[i]->fds) {
      if (f.kind == FdKind::kFifo && f.file >= 0 && (f.flags & O_ACCMODE) != O_WRONLY) {
        // A FIFO one of the processes reads: the bytes buffered in it, once.
        std::string name = FifoBlobName(models[i]->files[f.file]);
        if (fifos.insert(name).second) {
          ASSIGN_OR_RETURN(std::string data, PeekPipe(pids[i], f.fd));
          if (!data.empty()) blobs->push_back({name, std::move(data)});
        }
        continue;
      }
      if (f.kind != FdKind::kPipe) continue;
      f.pipe_internal = external.count(f.pipe_ino) == 0;
      std::string link = ProcPath(pids[i], "fd/" + std::to_string(f.fd));
      int in = ::open(link.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      int cap = in >= 0 ? ::fcntl(in, F_GETPIPE_SZ) : -1;
      if (in >= 0) ::close(in);
      f.pos = cap > 0 ? static_cast<std::uint64_t>(cap) : 65536;  // for pipes: the capacity
      if (!f.pipe_internal || f.pipe_write_end || stored.count(f.pipe_ino) != 0) continue;
      ASSIGN_OR_RETURN(std::string data, PeekPipe(pids[i], f.fd));
      stored.insert(f.pipe_ino);
      blobs->push_back({"pipe." + std::to_string(f.pipe_ino), std::move(data)});
    }
  }
  return Status::Ok();
}

PipeTable::~PipeTable() {
  CloseAll();
}

void PipeTable::CloseAll() {
  for (const auto& [ino, ends] : pipes_) {
    ::close(ends.first);
    ::close(ends.second);
  }
  pipes_.clear();
}

Result<int> PipeTable::End(const Fd& f, const image::ImageReader& r) {
  auto it = pipes_.find(f.pipe_ino);
  if (it == pipes_.end()) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return PosixError("pipe2", "pipe " + std::to_string(f.pipe_ino), errno);
    it = pipes_.emplace(f.pipe_ino, std::make_pair(p[0], p[1])).first;
    if (f.pos != 0) ::fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(f.pos));
    if (const auto* b = r.Find(kSecBlob, "pipe." + std::to_string(f.pipe_ino)); b != nullptr) {
      ASSIGN_OR_RETURN(std::string data, r.ReadSection(*b));
      RETURN_IF_ERROR(WriteAll(p[1], data, "pipe " + std::to_string(f.pipe_ino)));
    }
  }
  return f.pipe_write_end ? it->second.second : it->second.first;
}

}  // namespace ckpt::engine
