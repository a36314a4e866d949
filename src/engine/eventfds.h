// Event files: eventfd (counter, semaphore mode), signalfd (mask), timerfd
// (clock, time left, period, expirations not yet read, absolute real-time
// timers by their wall time) and epoll (every watch: descriptor, events,
// data). Dump reads them from fdinfo, with kcmp(KCMP_EPOLL_TFD) proving
// each epoll watch is the descriptor the process has under that number.
// Restore creates each file in ckpt and passes it like any descriptor;
// epoll watches are added in the set-up child once its descriptors are in
// place, so that they carry the process's own numbers. Stateless.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

// True if `link` (a /proc/PID/fd link) names an event file; sets *kind.
bool EventFileKind(const std::string& link, EventKind* kind);

// From /proc alone (before any freeze): why descriptor `fd` of `pid`, an
// event file of `kind` whose fdinfo is `info`, cannot be dumped, or "".
std::string EventFileProblem(pid_t pid, int fd, EventKind kind, const std::string& info);

// Reads event file `fd` of frozen process `pid`.
Result<EventFile> DumpEventFile(pid_t pid, int fd, EventKind kind);

// Numbers every event file of the members (models[i] is process pids[i]) so
// that members sharing one open file description share the number. An
// epoll file shared by members keeps its watches in the first holder only
// (they are one set, added once at the restore).
Status NumberEventFiles(const std::vector<pid_t>& pids, const std::vector<ProcessModel*>& models);

// In ckpt: a new file like `e`, close-on-exec (status flags are set later).
Result<int> CreateEventFile(const EventFile& e);

// In the set-up child, once every descriptor is in place: adds the watches
// of every epoll file in `events`. 0, or an errno with *what set.
int ChildAddEpollWatches(const std::vector<EventFile>& events, const char** what);

// `ckpt check`: "" if this kernel lets ckpt save and restore event files
// (pidfd_getfd, KCMP_EPOLL_TFD, TFD_IOC_SET_TICKS), else what failed.
std::string ProbeEventFiles();

}  // namespace ckpt::engine
