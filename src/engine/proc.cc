#include "engine/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

bool MapsEntry::HasFlag(const char* two) const {
  for (std::size_t i = 0; i + 1 < vmflags.size(); i += 3) {
    if (vmflags[i] == two[0] && vmflags[i + 1] == two[1]) return true;
  }
  return false;
}

std::string ProcPath(pid_t pid, const std::string& rest) {
  return "/proc/" + std::to_string(pid) + "/" + rest;
}

Result<std::string> ReadProcFile(pid_t pid, const std::string& name) {
  std::string path = ProcPath(pid, name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("process " + std::to_string(pid) + " does not exist (" + path + ")");
    return PosixError("open", path, errno);
  }
  auto out = ReadAllFd(fd, path);
  ::close(fd);
  return out;
}

Result<std::string> ReadAllFd(int fd, const std::string& what) {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return PosixError("read", what, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

namespace {

bool ParseMapsLine(const std::string& line, MapsEntry* e) {
  char perms[5] = {0};
  unsigned long long start, end, off, ino;
  unsigned maj, min;
  int consumed = 0;
  if (std::sscanf(line.c_str(), "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj, &min,
                  &ino, &consumed) < 7) {
    return false;
  }
  e->start = start;
  e->end = end;
  e->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
            (perms[2] == 'x' ? PROT_EXEC : 0);
  e->shared = perms[3] == 's';
  e->pgoff = off;
  e->dev_major = maj;
  e->dev_minor = min;
  e->ino = ino;
  e->path = consumed > 0 && static_cast<std::size_t>(consumed) <= line.size() ? line.substr(consumed) : "";
  return true;
}

}  // namespace

Result<std::vector<MapsEntry>> ReadMaps(pid_t pid, bool smaps) {
  ASSIGN_OR_RETURN(std::string text, ReadProcFile(pid, smaps ? "smaps" : "maps"));
  std::vector<MapsEntry> out;
  std::size_t b = 0;
  while (b < text.size()) {
    std::size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    std::string line = text.substr(b, e - b);
    b = e + 1;
    if (line.empty()) continue;
    if (smaps && line.compare(0, 8, "VmFlags:") == 0) {
      if (!out.empty()) {
        std::string f = line.substr(8);
        std::size_t s = f.find_first_not_of(' ');
        out.back().vmflags = s == std::string::npos ? "" : f.substr(s);
      }
      continue;
    }
    // smaps detail lines look like "Rss:   4 kB": a key ending in ':' first.
    std::size_t sp = line.find(' ');
    if (smaps && sp != std::string::npos && sp > 0 && line[sp - 1] == ':') {
      if (!out.empty() && line.compare(0, 7, "Shared_") == 0)
        out.back().shared_kb += std::strtoull(line.c_str() + sp, nullptr, 10);
      continue;
    }
    MapsEntry m;
    if (!ParseMapsLine(line, &m)) {
      return Corruption("cannot parse line of " + ProcPath(pid, smaps ? "smaps" : "maps") + ": " + line);
    }
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<pid_t>> ListThreads(pid_t pid) {
  std::string path = ProcPath(pid, "task");
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return NotFound("process " + std::to_string(pid) + " does not exist");
    return PosixError("opendir", path, errno);
  }
  std::vector<pid_t> out;
  while (struct dirent* de = ::readdir(d)) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    out.push_back(static_cast<pid_t>(std::atoi(de->d_name)));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  // The thread-group leader first.
  auto it = std::find(out.begin(), out.end(), pid);
  if (it != out.end()) std::rotate(out.begin(), it, it + 1);
  return out;
}

Result<std::vector<std::string>> ReadStat(pid_t pid) {
  ASSIGN_OR_RETURN(std::string s, ReadProcFile(pid, "stat"));
  std::size_t close = s.rfind(')');
  if (close == std::string::npos) return Corruption("malformed " + ProcPath(pid, "stat"));
  std::vector<std::string> f;
  std::size_t b = close + 2;
  while (b < s.size()) {
    std::size_t e = s.find_first_of(" \n", b);
    if (e == std::string::npos) e = s.size();
    f.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return f;
}

Result<std::string> StatusField(pid_t pid, const std::string& key) {
  ASSIGN_OR_RETURN(std::string s, ReadProcFile(pid, "status"));
  return TextField(s, key);
}

std::string TextField(const std::string& text, const std::string& key) {
  std::string k = key + ":";
  std::size_t p = text.compare(0, k.size(), k) == 0 ? 0 : text.find("\n" + k);
  if (p == std::string::npos) return "";
  p = text.find(':', p) + 1;
  std::size_t e = text.find('\n', p);
  std::string v = text.substr(p, e == std::string::npos ? std::string::npos : e - p);
  std::size_t a = v.find_first_not_of(" \t");
  return a == std::string::npos ? "" : v.substr(a);
}

std::string CommOf(pid_t pid) {
  auto c = ReadProcFile(pid, "comm");
  if (!c.ok()) return "?";
  while (!c->empty() && (c->back() == '\n' || c->back() == ' ')) c->pop_back();
  return *c;
}

std::vector<int> ListNumbered(const std::string& dir) {
  std::vector<int> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* de = ::readdir(d)) {
    if (de->d_name[0] >= '0' && de->d_name[0] <= '9') out.push_back(std::atoi(de->d_name));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<pid_t> WithDescendants(const std::vector<pid_t>& roots) {
  std::vector<pid_t> out;
  for (pid_t p : roots) {
    if (p > 0 && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  for (std::size_t i = 0; i < out.size() && out.size() < 100000; ++i) {
    for (pid_t c : ListChildren(out[i])) {
      if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
    }
  }
  return out;
}

std::vector<pid_t> ListChildren(pid_t pid) {
  std::vector<pid_t> out;
  for (int t : ListNumbered(ProcPath(pid, "task"))) {
    auto c = ReadProcFile(pid, "task/" + std::to_string(t) + "/children");
    if (!c.ok()) continue;
    const char* p = c->c_str();
    while (*p != 0) {
      char* end = nullptr;
      long v = std::strtol(p, &end, 10);
      if (end == p) break;
      out.push_back(static_cast<pid_t>(v));
      p = end;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<std::string> ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return PosixError("readlink", path, errno);
  return std::string(buf, static_cast<std::size_t>(n));
}

Result<FdInfo> ReadFdInfo(pid_t pid, int fd) {
  ASSIGN_OR_RETURN(std::string s, ReadProcFile(pid, "fdinfo/" + std::to_string(fd)));
  FdInfo fi;
  std::size_t p = s.find("pos:");
  if (p != std::string::npos) fi.pos = std::strtoull(s.c_str() + p + 4, nullptr, 10);
  p = s.find("flags:");
  if (p != std::string::npos)
    fi.flags = static_cast<std::uint32_t>(std::strtoul(s.c_str() + p + 6, nullptr, 8));
  fi.text = std::move(s);
  return fi;
}

int SocketOption(int s, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(s, level, name, &v, &len) != 0) return -1;
  return v;
}

Result<int> CopyFdOf(pid_t pid, int fd) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return platform::PosixError("pidfd_open", "process " + std::to_string(pid), errno);
  int mine = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  int err = errno;
  ::close(pidfd);
  if (mine < 0) {
    return platform::PosixError("pidfd_getfd",
                                "fd " + std::to_string(fd) + " of process " + std::to_string(pid), err);
  }
  return mine;
}

}  // namespace ckpt::engine
