// The restore's guardian (guard.h, RestoreGuard): a grandchild of ckpt
// that undoes what a restore created on this host if ckpt dies first.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "engine/guard.h"
#include "engine/util.h"
#include "platform/posix_util.h"
#include "util/bytes.h"

namespace ckpt::engine {

namespace {

// Guardian message types.
constexpr char kSysv = 'S';   // kind byte, u32 id, u32 key
constexpr char kFile = 'F';   // path
constexpr char kKill = 'K';   // u32 count: that many pidfds (or held descriptors) come with it (SCM_RIGHTS)
constexpr int kMaxFds = 250;  // per message (SCM_MAX_FD is 253)
constexpr char kCommit = 'C';
constexpr char kDone = 'D';

// An object `id` of `kind` with `key` (or any key when `key` is 0).
bool SysvHasKey(char kind, int id, std::int32_t key) {
  std::int32_t have = 0;
  if (kind == 's') {
    struct shmid_ds ds;
    if (::shmctl(id, IPC_STAT, &ds) != 0) return false;
    have = ds.shm_perm.__key;
  } else if (kind == 'e') {
    struct semid_ds ds;
    if (::semctl(id, 0, IPC_STAT, &ds) != 0) return false;
    have = ds.sem_perm.__key;
  } else {
    struct msqid_ds ds;
    if (::msgctl(id, IPC_STAT, &ds) != 0) return false;
    have = ds.msg_perm.__key;
  }
  return key == 0 || have == key;
}

// The guardian: collects what to undo until ckpt says it is done; undoes it
// when ckpt's end of the socket closes first. The processes to kill come as
// pidfds (opened by ckpt while they were its live children: never another
// process that got the same PID later).
[[noreturn]] void GuardianMain(int in) {
  std::vector<std::pair<char, std::pair<int, std::int32_t>>> sysv;
  std::vector<std::string> files;
  std::vector<int> pidfds;
  std::string buf;
  char tmp[4096];
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  while (true) {
    struct iovec iov = {tmp, sizeof tmp};
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(in, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        pidfds.push_back(fd);
      }
    }
    buf.append(tmp, static_cast<std::size_t>(n));
    while (buf.size() >= 5) {
      std::uint32_t len = DecodeU32(reinterpret_cast<const unsigned char*>(buf.data() + 1));
      if (buf.size() < 5 + static_cast<std::size_t>(len)) break;
      char type = buf[0];
      std::string p = buf.substr(5, len);
      buf.erase(0, 5 + static_cast<std::size_t>(len));
      const auto* u = reinterpret_cast<const unsigned char*>(p.data());
      if (type == kCommit || type == kDone) ::_exit(0);
      if (type == kSysv && p.size() == 9) {
        sysv.push_back(
            {p[0], {static_cast<int>(DecodeU32(u + 1)), static_cast<std::int32_t>(DecodeU32(u + 5))}});
      } else if (type == kFile) {
        files.push_back(p);
      }  // kKill: its pidfds were taken with the bytes above
    }
  }
  // ckpt died in the middle of the restore. The processes are killed
  // before the guardian lets go of what it holds (a lazy restore's
  // userfaultfds: while one is open, a missing page is waited for, never
  // read as zeros).
  std::vector<struct pollfd> dying;
  for (int fd : pidfds) {
    if (::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0) == 0)
      dying.push_back({fd, POLLIN, 0});  // readable once its process is gone
  }
  for (auto& p : dying) (void)::poll(&p, 1, 1000);
  int removed = 0;
  for (const auto& [kind, ik] : sysv) {
    if (!SysvHasKey(kind, ik.first, ik.second)) continue;
    int r = kind == 's'   ? ::shmctl(ik.first, IPC_RMID, nullptr)
            : kind == 'e' ? ::semctl(ik.first, 0, IPC_RMID)
                          : ::msgctl(ik.first, IPC_RMID, nullptr);
    removed += r == 0 ? 1 : 0;
  }
  for (const auto& f : files) removed += ::unlink(f.c_str()) == 0 ? 1 : 0;
  std::fprintf(stderr,
               "ckpt: restore interrupted: ckpt ended before the restore was complete; the processes it was "
               "restoring ended too, and %d System V objects and files it had created were removed\n",
               removed);
  ::_exit(0);
}

}  // namespace

Status RestoreGuard::Start() {
  int p[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
    return platform::PosixError("socketpair", "for the restore guardian", errno);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t c = ::fork();
  if (c == 0) {
    // A grandchild of ckpt: never its child (ckpt waits for its children),
    // in a session of its own (signals to ckpt's group do not reach it).
    if (::fork() != 0) ::_exit(0);
    ::setsid();
    ::signal(SIGPIPE, SIG_IGN);
    int in = ::fcntl(p[0], F_DUPFD_CLOEXEC, 3);  // above stdin, stdout, stderr
    if (in < 0) ::_exit(1);
    // Holding ckpt's descriptors (pipe ends the restored processes use,
    // the terminal) would change what they see: keep the pipe and stderr.
    ::syscall(SYS_close_range, 3u, static_cast<unsigned>(in - 1), 0u);
    ::syscall(SYS_close_range, static_cast<unsigned>(in + 1), ~0u, 0u);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      if (null > 2 && null != in) ::close(null);
    }
    GuardianMain(in);
  }
  int e = errno;
  ::close(p[0]);
  if (c < 0) {
    ::close(p[1]);
    return platform::PosixError("fork", "the restore guardian", e);
  }
  int status;
  while (::waitpid(c, &status, 0) == -1 && errno == EINTR) {
  }
  fd_ = p[1];
  return Status::Ok();
}

void RestoreGuard::Send(char type, const std::string& payload) {
  if (fd_ < 0) return;
  if (!WriteAll(fd_, Frame(type, payload), /*socket=*/true)) {
    ::close(fd_);
    fd_ = -1;
  }
}

void RestoreGuard::SysvCreating(char kind, int id, std::int32_t key) {
  std::string p(1, kind);
  PutU32(&p, static_cast<std::uint32_t>(id));
  PutU32(&p, static_cast<std::uint32_t>(key));
  Send(kSysv, p);
}

void RestoreGuard::FileCreated(const std::string& path) {
  Send(kFile, path);
}

void RestoreGuard::KillOnDeath(const std::vector<pid_t>& pids) {
  std::vector<int> fds;
  for (pid_t pid : pids) {
    int fd = pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1;
    if (fd >= 0) fds.push_back(fd);
  }
  SendFds(fds);
  for (int fd : fds) ::close(fd);
}

void RestoreGuard::HoldUntilKilled(int fd) {
  // With the pidfds: the guardian signals each (a descriptor that is not a
  // pidfd refuses, harmlessly) and closes them all only after.
  SendFds({fd});
}

void RestoreGuard::SendFds(const std::vector<int>& fds) {
  for (std::size_t at = 0; at < fds.size() && fd_ >= 0; at += kMaxFds) {
    std::size_t n = std::min<std::size_t>(kMaxFds, fds.size() - at);
    std::string payload;
    PutU32(&payload, static_cast<std::uint32_t>(n));
    std::string f = Frame(kKill, payload);
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    struct iovec iov = {f.data(), f.size()};
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    std::memcpy(CMSG_DATA(c), fds.data() + at, sizeof(int) * n);
    ssize_t sent;
    do {
      sent = ::sendmsg(fd_, &mh, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    // The frame is 9 bytes: a stream socket takes it whole or not at all.
    if (sent != static_cast<ssize_t>(f.size())) {
      ::close(fd_);
      fd_ = -1;
    }
  }
}

void RestoreGuard::Commit() {
  Send(kCommit, "");
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

RestoreGuard::~RestoreGuard() {
  Send(kDone, "");
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace ckpt::engine
