// Drives the engine's migration hooks directly (docs/engine.md, "Hooks for
// migration"), for run_handoff.sh:
//   handoff_driver dump PID OUTFILE abort|commit|hang [--tree] [--leave-running]
//     dumps PID into OUTFILE through DumpOptions::stream (a descriptor
//     sink); the handoff prints "HANDOFF state=S log_grew=N" (S: the root's
//     state while it runs, N: whether DIR/log grew during 0.3 s of it) and
//     then says no (abort), yes (commit), or waits until the dump is
//     interrupted (hang; DumpInterruptFd).
//   handoff_driver restore IMAGE commit|abort|hang
//     restores IMAGE (DIR/process.ckpt, or DIR) detached; the hold prints
//     "HOLD pid=N" and then says yes, no, or sleeps forever (hang).
// Prints "OK ..." and exits 0, or "ERROR: message" and exits 1.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "engine/engine.h"
#include "image/io.h"
#include "util/status.h"

namespace {

using ckpt::Status;

// An image::Sink over a descriptor: works from the dump's worker (a fork),
// as the network stream of a migration would.
class FdSink : public ckpt::image::Sink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  Status Append(const void* data, std::size_t size) override {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ckpt::IoError(std::string("write to the image stream: ") + std::strerror(errno));
      p += n;
      size -= static_cast<std::size_t>(n);
      pos_ += static_cast<std::uint64_t>(n);
    }
    return Status::Ok();
  }
  std::uint64_t Position() const override { return pos_; }

 private:
  int fd_;
  std::uint64_t pos_ = 0;
};

std::string ProcState(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t close = all.rfind(')');
  return close == std::string::npos || close + 2 >= all.size() ? "?" : all.substr(close + 2, 1);
}

// The size of the zdtm program's log (DIR/log, DIR from its command line).
long LogSize(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t a = all.find('\0');
  if (a == std::string::npos) return -1;
  std::string dir = all.substr(a + 1, all.find('\0', a + 1) - a - 1);
  struct stat st;
  return ::stat((dir + "/log").c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
}

int Dump(pid_t pid, const std::string& out, const std::string& mode, bool tree, bool leave_running) {
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::printf("ERROR: open %s: %s\n", out.c_str(), std::strerror(errno));
    return 1;
  }
  FdSink sink(fd);
  ckpt::engine::DumpOptions o;
  o.pid = pid;
  o.tree = tree;
  o.leave_running = leave_running;
  o.stream = &sink;
  o.handoff = [&](const ckpt::engine::DumpStats& s) -> Status {
    long before = LogSize(pid);
    ::usleep(300 * 1000);
    long after = LogSize(pid);
    std::printf("HANDOFF state=%s log_grew=%d image_bytes=%llu written=%llu members=%d\n",
                ProcState(pid).c_str(), before != after ? 1 : 0,
                static_cast<unsigned long long>(s.image_bytes),
                static_cast<unsigned long long>(sink.Position()), s.members);
    std::fflush(stdout);
    if (mode == "commit") return Status::Ok();
    if (mode == "abort") return ckpt::FailedPrecondition("the target said no (test handoff)");
    struct pollfd p = {ckpt::engine::DumpInterruptFd(), POLLIN, 0};
    if (p.fd < 0) return ckpt::Internal("no interruption descriptor in the handoff");
    while (::poll(&p, 1, -1) <= 0) {
    }
    return ckpt::FailedPrecondition("the handoff saw the interruption");
  };
  auto r = ckpt::engine::Dump(o);
  ::close(fd);
  if (!r.ok()) {
    std::printf("ERROR: %s\n", r.status().message().c_str());
    return 1;
  }
  std::printf("OK image_bytes=%llu image_path='%s' members=%d frozen_ns=%lld handoff_ns=%lld late='%s'\n",
              static_cast<unsigned long long>(r->image_bytes), r->image_path.c_str(), r->members,
              static_cast<long long>(r->frozen_ns), static_cast<long long>(r->phases.handoff_ns),
              r->late_interruption.c_str());
  return 0;
}

int Restore(std::string image, const std::string& mode) {
  struct stat st;
  if (::stat(image.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    std::size_t slash = image.rfind('/');
    if (image.substr(slash == std::string::npos ? 0 : slash + 1) != "process.ckpt") {
      std::printf("ERROR: the image must be named process.ckpt\n");
      return 1;
    }
    image = slash == std::string::npos ? "." : image.substr(0, slash);
  }
  ckpt::engine::RestoreOptions o;
  o.dir = image;
  o.detach = true;
  o.hold = [&](const ckpt::engine::RestoreStats& s) -> Status {
    std::printf("HOLD pid=%d state=%s\n", static_cast<int>(s.pid), ProcState(s.pid).c_str());
    std::fflush(stdout);
    if (mode == "commit") return Status::Ok();
    if (mode == "abort") return ckpt::FailedPrecondition("the source said no (test hold)");
    for (;;) ::pause();
  };
  auto r = ckpt::engine::Restore(o);
  if (!r.ok()) {
    std::printf("ERROR: %s\n", r.status().message().c_str());
    return 1;
  }
  std::printf("OK pid=%d\n", static_cast<int>(r->pid));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string verb = argc > 1 ? argv[1] : "";
  if (verb == "dump" && argc >= 5) {
    bool tree = false, leave = false;
    for (int i = 5; i < argc; ++i) {
      tree = tree || std::strcmp(argv[i], "--tree") == 0;
      leave = leave || std::strcmp(argv[i], "--leave-running") == 0;
    }
    return Dump(static_cast<pid_t>(std::atoi(argv[2])), argv[3], argv[4], tree, leave);
  }
  if (verb == "restore" && argc == 4) return Restore(argv[2], argv[3]);
  std::fprintf(stderr,
               "usage: handoff_driver dump PID OUTFILE abort|commit|hang [--tree] [--leave-running]\n"
               "       handoff_driver restore IMAGE commit|abort|hang\n");
  return 2;
}
