#include "engine/locks.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>

#include <cstdlib>
#include <sstream>

#include "platform/posix_util.h"

namespace ckpt::engine {

std::vector<LockLine> ParseFdLockLines(const std::string& fdinfo) {
  std::vector<LockLine> out;
  std::size_t p = 0;
  while ((p = fdinfo.find("lock:", p)) != std::string::npos) {
    std::size_t e = fdinfo.find('\n', p);
    std::istringstream in(fdinfo.substr(p + 5, e == std::string::npos ? std::string::npos : e - p - 5));
    p = e == std::string::npos ? fdinfo.size() : e;
    LockLine l;
    std::string id, mode, pid, inode;
    in >> id >> l.kind >> mode >> l.type >> pid >> inode >> l.start >> l.end;
    l.pid = std::atoi(pid.c_str());
    out.push_back(l);
  }
  return out;
}

Status DumpFdLocks(pid_t pid, int fd, const std::string& info, std::vector<FileLock>* out) {
  for (const auto& l : ParseFdLockLines(info)) {
    FileLock fl;
    fl.fd = fd;
    fl.write = l.type == "WRITE";
    if (l.kind == "POSIX") {
      fl.kind = LockKind::kPosix;
    } else if (l.kind == "OFDLCK") {
      fl.kind = LockKind::kOfd;
    } else if (l.kind == "FLOCK") {
      fl.kind = LockKind::kFlock;
    } else {
      return NotSupported("fd " + std::to_string(fd) + " of process " + std::to_string(pid) + " holds a " +
                          l.kind + " lock, which cannot be saved");
    }
    if (l.type != "READ" && l.type != "WRITE") {
      return NotSupported("fd " + std::to_string(fd) + " of process " + std::to_string(pid) +
                          " holds a lock of type " + l.type);
    }
    if (fl.kind != LockKind::kFlock) {
      fl.start = std::strtoll(l.start.c_str(), nullptr, 10);
      fl.len = l.end == "EOF" ? 0 : std::strtoll(l.end.c_str(), nullptr, 10) - fl.start + 1;
      if (fl.start < 0 || fl.len < 0)
        return Corruption("fd " + std::to_string(fd) + ": unreadable lock range");
    }
    out->push_back(fl);
  }
  return Status::Ok();
}

std::string DescribeFileLock(const FileLock& l) {
  const char* rw = l.write ? "write" : "read";
  std::string range = l.len == 0
                          ? "bytes " + std::to_string(l.start) + " to the end of the file"
                          : "bytes " + std::to_string(l.start) + "-" + std::to_string(l.start + l.len - 1);
  switch (l.kind) {
    case LockKind::kPosix:
      return std::string("a POSIX (fcntl) ") + rw + " lock on " + range + " of fd " + std::to_string(l.fd);
    case LockKind::kOfd:
      return std::string("an OFD ") + rw + " lock on " + range + " of fd " + std::to_string(l.fd);
    case LockKind::kFlock:
      return std::string("an flock() ") + (l.write ? "exclusive" : "shared") + " lock on fd " +
             std::to_string(l.fd);
  }
  return "a lock";
}

Status RetakeLocks(const ProcessModel& m, Injector* inj) {
  for (const auto& l : m.locks) {
    long r = 0;
    if (l.kind == LockKind::kFlock) {
      int op = (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB;
      ASSIGN_OR_RETURN(
          r, inj->Raw(SYS_flock, {static_cast<std::uint64_t>(l.fd), static_cast<std::uint64_t>(op)}));
    } else {
      struct flock fl = {};
      fl.l_type = l.write ? F_WRLCK : F_RDLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = l.start;
      fl.l_len = l.len;
      ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(0, &fl, sizeof fl));
      int cmd = l.kind == LockKind::kOfd ? F_OFD_SETLK : F_SETLK;
      ASSIGN_OR_RETURN(
          r, inj->Raw(SYS_fcntl, {static_cast<std::uint64_t>(l.fd), static_cast<std::uint64_t>(cmd), at}));
    }
    if (r == -EAGAIN || r == -EACCES) {
      return FailedPrecondition("cannot take back " + DescribeFileLock(l) +
                                ": another process holds a conflicting lock now (taken after the dump)");
    }
    if (r < 0) return platform::PosixError("taking back", DescribeFileLock(l), static_cast<int>(-r));
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
