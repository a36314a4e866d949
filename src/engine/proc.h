// Readers for /proc/PID files the engine relies on: maps and smaps, stat,
// status, task lists, fdinfo. Stateless; thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace ckpt::engine {

struct MapsEntry {
  std::uint64_t start = 0, end = 0;
  std::uint32_t prot = 0;  // PROT_*
  bool shared = false;
  std::uint64_t pgoff = 0;
  std::uint32_t dev_major = 0, dev_minor = 0;
  std::uint64_t ino = 0;
  std::string path;             // as shown, " (deleted)" suffix included
  std::string vmflags;          // smaps "VmFlags:" two-letter codes, space separated
  std::uint64_t shared_kb = 0;  // smaps Shared_Clean + Shared_Dirty + Shared_Hugetlb
  bool HasFlag(const char* two) const;
};

std::string ProcPath(pid_t pid, const std::string& rest);
Result<std::string> ReadProcFile(pid_t pid, const std::string& name);
// Reads `fd` to its end (or until it would block); `what` names it in errors.
Result<std::string> ReadAllFd(int fd, const std::string& what);
// With `smaps`, VmFlags and shared_kb are filled in too.
Result<std::vector<MapsEntry>> ReadMaps(pid_t pid, bool smaps);
Result<std::vector<pid_t>> ListThreads(pid_t pid);
// Fields of /proc/PID/stat after the command name; field N (1-based as in
// proc(5)) is at index N - 3.
Result<std::vector<std::string>> ReadStat(pid_t pid);
// The value of "Key:" in /proc/PID/status, trimmed ("" if absent).
Result<std::string> StatusField(pid_t pid, const std::string& key);
// The value of "Key:" in a status-like text (status, fdinfo), trimmed ("" if
// absent).
std::string TextField(const std::string& text, const std::string& key);
// The command name of process `pid` (/proc/PID/comm), "?" if unknown.
std::string CommOf(pid_t pid);
// The numeric entries of a /proc directory (processes, threads,
// descriptors), sorted; none if it cannot be read.
std::vector<int> ListNumbered(const std::string& dir);
// Children of every thread of `pid` (/proc/PID/task/*/children), sorted,
// each once.
std::vector<pid_t> ListChildren(pid_t pid);
// `roots` (those > 0) and, after them, every process descended from one,
// each once, parents before their children.
std::vector<pid_t> WithDescendants(const std::vector<pid_t>& roots);
Result<std::string> ReadLink(const std::string& path);
// A descriptor of ckpt's for the open file description that descriptor
// `fd` of `pid` refers to (pidfd_getfd); the caller closes it.
Result<int> CopyFdOf(pid_t pid, int fd);
// An int socket option of socket `s` (getsockopt), or -1.
int SocketOption(int s, int level, int name);

struct FdInfo {
  std::uint64_t pos = 0;
  std::uint32_t flags = 0;
  std::string text;  // the whole fdinfo, for the lines a kind of file adds (locks, ...)
};
Result<FdInfo> ReadFdInfo(pid_t pid, int fd);

}  // namespace ckpt::engine
