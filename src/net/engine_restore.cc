// The engine's restore for a migration's receiver, in a fork of its own: the
// receiving process goes on taking frames into the spool file while the
// fork restores from that file as it grows (engine::RestoreOptions'
// follow_*). They talk over a socket pair, one JSON object per line:
//   fork -> receiver  {"held": PID}          tree rebuilt from the whole image, held
//                     {"done": {facts}}      let go
//                     {"error": "message"}   failed: nothing restored is left
//   receiver -> fork  "go\n"                 let it run (after the source's COMMIT)
// The receiver closing its end (or dying) makes a held restore undo itself.
#include "net/engine_restore.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>

#include "engine/engine.h"
#include "net/remote_pages.h"
#include "platform/env.h"
#include "platform/posix_util.h"

namespace ckpt::net {

namespace {

void SendLine(int fd, const std::string& line) {
  std::string l = line + "\n";
  std::size_t off = 0;
  while (off < l.size()) {
    ssize_t n = ::send(fd, l.data() + off, l.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

// Reads exactly the line `want` (with its newline) from the receiver.
bool ReadWord(int fd, const std::string& want) {
  std::string got(want.size(), '\0');
  std::size_t n = 0;
  while (n < got.size()) {
    ssize_t r = ::read(fd, got.data() + n, got.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    n += static_cast<std::size_t>(r);
  }
  return got == want;
}

// The fork: restores, reports, exits without running the receiver's
// destructors or flushing its stdio (its stdout may be the ssh channel).
[[noreturn]] void RestorerMain(int fd, const ArrivingImage& image, bool new_pidns, bool lazy, bool postcopy) {
  std::unique_ptr<SourcePages> remote;
  if (postcopy) {
    auto opened = SourcePages::Open(image.conn_read_fd, image.conn_write_fd,
                                    platform::JoinPath(image.dir, "postcopy-pages"), "the source");
    if (!opened.ok()) {
      SendLine(fd, nlohmann::json{{"error", opened.status().message()}}.dump());
      ::_exit(1);
    }
    remote = std::move(opened).value();
  }
  engine::RestoreOptions r;
  r.remote_pages = remote.get();
  r.dir = image.dir;
  r.detach = true;
  r.ipc_ns = engine::IpcNsMode::kAuto;
  r.new_pidns = new_pidns;
  r.follow_complete_marker = image.complete_marker;
  r.follow_writer_pid = ::getppid();
  r.follow_limit = image.limit;
  // A live migration's last image: what it takes from the rounds (complete
  // files here) is filled once the process runs.
  r.lazy = lazy || postcopy;
  r.on_running = [fd, &remote](const engine::RestoreStats& s) {
    if (!s.lazy) return;
    SendLine(fd, nlohmann::json{{"running",
                                 {{"pid", s.pid},
                                  {"members", s.members},
                                  {"new_ipc_ns", s.new_ipc_ns},
                                  {"lazy", true},
                                  {"postcopy", remote != nullptr}}}}
                     .dump());
    // The receiver has sent DONE: the connection is ours (a missing
    // page waits until then; no word means no pages and a failed fill).
    if (remote == nullptr) return;
    if (ReadWord(fd, "net\n")) {
      remote->Enable();
    } else {
      remote->Abandon(FailedPrecondition("the receiver went away before it handed the connection over"));
    }
  };
  r.hold = [fd, &remote](const engine::RestoreStats& s) -> Status {
    SendLine(fd, nlohmann::json{{"held", s.pid}}.dump());
    char c[3];
    std::size_t got = 0;
    while (got < sizeof c) {
      ssize_t n = ::read(fd, c + got, sizeof c - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got == sizeof c && std::string(c, 3) == "go\n") {
      if (remote != nullptr) remote->Released();
      return Status::Ok();
    }
    return FailedPrecondition("the receiver gave the restored copy up");
  };
  auto st = engine::Restore(r);
  if (st.ok()) {
    nlohmann::json done = {{"pid", st->pid},
                           {"members", st->members},
                           {"new_ipc_ns", st->new_ipc_ns},
                           {"lazy_pages", st->lazy_pages},
                           {"lazy_faults", st->lazy_faults},
                           {"fill_ms", st->fill_ns / 1e6}};
    if (remote != nullptr) done["remote_pages"] = remote->Stats();
    SendLine(fd, nlohmann::json{{"done", done}}.dump());
  } else {
    SendLine(fd, nlohmann::json{{"error", st.status().message()}}.dump());
  }
  ::_exit(st.ok() ? 0 : 1);
}

class ForkedRestore final : public ProcessRestore {
 public:
  ForkedRestore(pid_t child, int fd) : child_(child), fd_(fd) {}
  ~ForkedRestore() override {
    if (child_ <= 0) return;
    // The receiver has marked the image complete by now: a fork still
    // reading it finds it cut short, a held one sees its line close; either
    // undoes its restore and ends.
    ::close(fd_);
    fd_ = -1;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (::waitpid(child_, nullptr, WNOHANG) == 0) {
      // A lazy fill ends by itself (killing it would kill what it fills).
      if (!lazy_ && std::chrono::steady_clock::now() > deadline) {
        // Its restore guard removes what it made once it is gone.
        ::kill(child_, SIGKILL);
        while (::waitpid(child_, nullptr, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  Status Check() override {
    if (!failure_.ok()) return failure_;
    struct pollfd p = {fd_, POLLIN, 0};
    if (pending_ || ::poll(&p, 1, 0) <= 0) return Status::Ok();
    ASSIGN_OR_RETURN(nlohmann::json j, Take());
    pending_ = std::move(j);
    return Status::Ok();
  }

  Result<std::int64_t> AwaitHeld() override {
    nlohmann::json j;
    if (pending_) {
      j = std::move(*pending_);
      pending_.reset();
    } else {
      ASSIGN_OR_RETURN(j, Take());
    }
    if (!j.contains("held")) return Internal("the restorer said " + j.dump() + " before holding the tree");
    return j["held"].get<std::int64_t>();
  }

  Result<nlohmann::json> Release() override {
    SendLine(fd_, "go");
    ASSIGN_OR_RETURN(nlohmann::json j, Take());
    if (j.contains("running")) {
      lazy_ = true;  // it runs; "done" comes once its pages are in
      return j["running"];
    }
    return Done(j, "when let go");
  }

  Status HandOver() override {
    SendLine(fd_, "net");
    return Status::Ok();
  }

  Result<nlohmann::json> AwaitFilled() override {
    if (!lazy_) return nlohmann::json::object();
    ASSIGN_OR_RETURN(nlohmann::json j, Take());
    return Done(j, "while filling pages");
  }

 private:
  // The fork's last line, {"done": facts}: it has ended (reaped here).
  Result<nlohmann::json> Done(const nlohmann::json& j, const char* when) {
    if (!j.contains("done")) return Internal("the restorer said " + j.dump() + " " + when);
    while (::waitpid(child_, nullptr, 0) < 0 && errno == EINTR) {
    }
    child_ = -1;
    return j["done"];
  }

  // The fork's next line (an error for {"error"}, or if it ended without one).
  Result<nlohmann::json> Take() {
    if (!failure_.ok()) return failure_;
    while (buf_.find('\n') == std::string::npos) {
      char tmp[4096];
      ssize_t n = ::read(fd_, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int status = 0;
        std::string how = "ended";
        if (::waitpid(child_, &status, 0) == child_) {
          child_ = -1;
          if (WIFSIGNALED(status)) how = "was killed by signal " + std::to_string(WTERMSIG(status));
        }
        return failure_ = Internal("the restoring process " + how + " before it reported");
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
    std::size_t nl = buf_.find('\n');
    nlohmann::json j = nlohmann::json::parse(buf_.substr(0, nl), nullptr, false);
    buf_.erase(0, nl + 1);
    if (j.is_discarded() || !j.is_object()) return failure_ = Internal("the restoring process sent garbage");
    if (j.contains("error")) return failure_ = FailedPrecondition(j["error"].get<std::string>());
    return j;
  }

  pid_t child_;
  int fd_;
  std::string buf_;
  std::optional<nlohmann::json> pending_;  // a line Check() read
  bool lazy_ = false;                      // the tree runs, its pages still filling
  Status failure_;
};

}  // namespace

ProcessRestorer EngineRestorer() {
  return
      [](const ArrivingImage& image, const nlohmann::json& hello) -> Result<std::unique_ptr<ProcessRestore>> {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
          return platform::PosixError("socketpair", "for the restoring process", errno);
        bool new_pidns = hello.value("pidns", false);
        pid_t child = ::fork();
        if (child < 0) {
          int e = errno;
          ::close(sv[0]);
          ::close(sv[1]);
          return platform::PosixError("fork", "the restoring process", e);
        }
        if (child == 0) {
          ::close(sv[0]);
          RestorerMain(sv[1], image, new_pidns, hello.value("live", false), hello.value("postcopy", false));
        }
        ::close(sv[1]);
        return std::unique_ptr<ProcessRestore>(new ForkedRestore(child, sv[0]));
      };
}

}  // namespace ckpt::net
