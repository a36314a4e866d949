// File descriptors: regular files (path, offset, flags, O_APPEND),
// unlinked-but-open files (contents kept), devices, FIFOs, pipes inside the
// process (contents kept) or reattached to a live holder of their other end.
// Dump reads /proc/PID/fd and fdinfo; restore opens everything in ckpt and
// the restore child moves the descriptors to their numbers. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/filetable.h"
#include "engine/model.h"
#include "image/reader.h"
#include "util/status.h"

namespace ckpt::engine {

struct Blob {
  std::string name;  // "file.N" or "pipe.INODE"
  std::string data;
};

Status DumpFds(pid_t pid, FileTable* files, ProcessModel* m, std::vector<Blob>* blobs);

// A descriptor opened by ckpt that the restore child places at `target`.
struct FdMove {
  int src = -1;
  int target = -1;
  bool cloexec = false;
};

// Descriptors prepared for the restore child; closes them when destroyed.
class FdPlan {
 public:
  FdPlan() = default;
  FdPlan(const FdPlan&) = delete;
  FdPlan& operator=(const FdPlan&) = delete;
  ~FdPlan();
  std::vector<FdMove> moves;
  int Own(int fd);  // records an fd to close in ckpt; returns it
  void CloseAll();

 private:
  std::vector<int> owned_;
};

class PipeTable;
class SharedMemRestore;
class SocketTable;
struct TreeModel;

// What the descriptors of several members share, created once in ckpt:
// internal pipes, shared memory objects, recreated unlinked files.
class SharedFds {
 public:
  SharedFds(PipeTable* pipes, const SharedMemRestore* shm, const TreeModel* tree)
      : pipes(pipes), shm(shm), tree(tree) {}
  SharedFds(const SharedFds&) = delete;
  SharedFds& operator=(const SharedFds&) = delete;
  ~SharedFds();         // closes what is left (connections in repair mode: silently)
  void CloseCreated();  // ckpt's event files and TCP/UDP sockets: the members hold theirs
  PipeTable* pipes;
  const SharedMemRestore* shm;
  const TreeModel* tree;
  std::map<std::pair<std::uint64_t, std::uint64_t>, int> deleted;  // (dev, ino) -> recreated file
  std::set<std::string> fifos_filled;                              // FIFO blobs already written back
  std::map<std::uint32_t, int> events;                             // event file object -> ckpt's file
  SocketTable* sockets = nullptr;                                  // Unix socket pairs, by inode
  std::map<std::uint64_t, int> inet;                               // TCP/UDP socket inode -> ckpt's socket
  // A connected socket just made (`s`, returned): ckpt keeps a copy until
  // FinishConnections.
  Result<int> KeepConnection(int s, const InetSocket* u);
  // Every member is rebuilt: the TCP connections leave repair mode.
  Status FinishConnections();

 private:
  std::vector<std::pair<int, InetSocket>> connections_;  // ckpt's copies, in repair mode until finished
};

// Opens (or recreates) every descriptor of member `pid` (sections named
// `prefix`...) into `plan`.
Status PrepareFds(const ProcessModel& m, const image::ImageReader& r, const std::string& prefix,
                  SharedFds* shared, FdPlan* plan);
// Opens each file used by a file mapping (and the executable) and places it
// at a descriptor number from `base` up. file_fds[i] gets the number for file i.
Status PrepareMapFiles(const ProcessModel& m, int base, FdPlan* plan, std::vector<int>* file_fds,
                       int* exe_fd);
// In the restore child: performs the moves, closes everything else except
// `keep`. Returns 0 or an errno; *what names the failing step.
int ChildApplyFds(const std::vector<FdMove>& moves, int* keep, const char** what);

}  // namespace ckpt::engine
