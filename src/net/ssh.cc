#include "net/ssh.h"

#include <cstdlib>

#include "util/text.h"

#ifndef _WIN32
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#ifndef _WIN32
#include "platform/posix_util.h"
#endif

namespace ckpt::net {

std::string SshTarget::Url() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "ssh://" + (user.empty() ? "" : user + "@") + h + (port != 0 ? ":" + std::to_string(port) : "");
}

Result<SshTarget> ParseSshUrl(const std::string& url) {
  const std::string scheme = "ssh://";
  if (url.rfind(scheme, 0) != 0) return InvalidArgument("not an ssh:// destination: " + url);
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  SshTarget t;
  auto at = rest.rfind('@');
  if (at != std::string::npos) {
    t.user = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return InvalidArgument("unclosed [ in " + url);
    t.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return InvalidArgument("malformed destination " + url);
      port = rest.substr(close + 2);
    }
  } else {
    auto colon = rest.find(':');
    t.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (t.host.empty() || t.host[0] == '-' || t.user.find_first_of(" \t/") != std::string::npos)
    return InvalidArgument("malformed destination " + url + " (ssh://[user@]host[:port])");
  if (!port.empty()) {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) return InvalidArgument("bad port in " + url);
    t.port = static_cast<int>(p);
  }
  return t;
}

std::string ShellQuote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                              "@%+=:,./-_") == std::string::npos)
    return word;
  std::string q = "'";
  for (char c : word) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Result<std::vector<std::string>> SshArgv(const SshTarget& target, const SshOptions& options,
                                         const std::vector<std::string>& remote_argv) {
  std::vector<std::string> argv = SplitWords(options.command);  // the client command
  if (argv.empty()) return InvalidArgument("empty ssh command");
  argv.push_back("-T");  // no terminal: the channel carries binary frames
  for (const auto& o : options.options) {
    argv.push_back("-o");
    argv.push_back(o);
  }
  if (target.port != 0) {
    argv.push_back("-p");
    argv.push_back(std::to_string(target.port));
  }
  if (!target.user.empty()) {
    argv.push_back("-l");
    argv.push_back(target.user);
  }
  argv.push_back("--");
  argv.push_back(target.host);
  std::string cmd;
  for (const auto& w : remote_argv) cmd += (cmd.empty() ? "" : " ") + ShellQuote(w);
  argv.push_back(cmd);
  return argv;
}

#ifndef _WIN32  // Windows: ssh_windows.cc

namespace {

class PosixSshChannel final : public SshChannel {
 public:
  PosixSshChannel(pid_t pid, int rfd, int wfd, int errfd, std::string describe)
      : pid_(pid), rfd_(rfd), wfd_(wfd), errfd_(errfd), describe_(std::move(describe)) {}
  ~PosixSshChannel() override {
    if (pid_ > 0) {
      CloseWrite();
      Finish(-1);
    }
    if (rfd_ >= 0) ::close(rfd_);
    if (errfd_ >= 0) ::close(errfd_);
  }
  Status Write(const void* data, std::size_t size) override { return Inner()->Write(data, size); }
  Status Read(void* data, std::size_t size, int timeout_ms) override {
    return Inner()->Read(data, size, timeout_ms);
  }
  void CloseWrite() override {
    if (wfd_ >= 0) ::close(wfd_);
    wfd_ = -1;
    inner_.reset();
  }
  std::string Describe() const override { return describe_; }
  bool Fds(int* read_fd, int* write_fd) const override {
    *read_fd = rfd_;
    *write_fd = wfd_;
    return rfd_ >= 0 && wfd_ >= 0;
  }
  int Finish(int grace_ms) override {
    CloseWrite();
    if (pid_ <= 0) return status_;
    int st = 0;
    bool reaped = false;
    for (int waited = 0; grace_ms >= 0 && !reaped; waited += 10) {
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        reaped = true;
      } else if (r < 0 && errno != EINTR) {
        break;
      } else if (waited >= grace_ms) {
        ::kill(pid_, SIGTERM);
        ended_ = true;
        break;
      } else {
        ::usleep(10 * 1000);
      }
    }
    while (!reaped && ::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
    pid_ = -1;
    return status_;
  }
  std::string ErrorText() override {
    std::string out;
    if (errfd_ < 0) return out;
    char buf[4096];
    ssize_t n;
    off_t off = 0;
    while ((n = ::pread(errfd_, buf, sizeof buf, off)) > 0 && out.size() < (1u << 20)) {
      out.append(buf, static_cast<std::size_t>(n));
      off += n;
    }
    return out;
  }
  void SetInterruptFd(int fd) override {
    intr_fd_ = fd;
    Inner()->SetInterruptFd(fd);
  }
  void Kill() override {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }
  long Pid() const override { return pid_; }
  bool EndedByUs() const override { return ended_; }

 private:
  Stream* Inner() {
    if (!inner_) {
      inner_ = NewFdStream(rfd_, wfd_, describe_, false);
      inner_->SetInterruptFd(intr_fd_);
    }
    return inner_.get();
  }
  pid_t pid_;
  int rfd_, wfd_, errfd_;
  std::string describe_;
  std::unique_ptr<Stream> inner_;
  int status_ = 255;
  int intr_fd_ = -1;
  bool ended_ = false;
};

}  // namespace

Result<std::unique_ptr<SshChannel>> StartSsh(const SshTarget& target, const SshOptions& options,
                                             const std::vector<std::string>& remote_argv) {
  ASSIGN_OR_RETURN(std::vector<std::string> argv, SshArgv(target, options, remote_argv));
  int to[2], from[2];
  if (::pipe2(to, O_CLOEXEC) != 0) return platform::PosixError("pipe", "for ssh", errno);
  if (::pipe2(from, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(to[0]);
    ::close(to[1]);
    return platform::PosixError("pipe", "for ssh", e);
  }
  // ssh's standard error is kept (not shown) for the error messages.
  int errfd = ::memfd_create("ckpt-ssh-stderr", MFD_CLOEXEC);
  std::vector<char*> av;
  for (auto& a : argv) av.push_back(a.data());
  av.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {to[0], to[1], from[0], from[1], errfd})
      if (fd >= 0) ::close(fd);
    return platform::PosixError("fork", "ssh", e);
  }
  if (pid == 0) {
    ::dup2(to[0], 0);
    ::dup2(from[1], 1);
    if (errfd >= 0) ::dup2(errfd, 2);
    ::signal(SIGPIPE, SIG_DFL);
    // Not in ckpt's process group: a Ctrl-C meant for ckpt reaches ckpt,
    // which then ends the migration in order.
    ::setpgid(0, 0);
    ::execvp(av[0], av.data());
    ::_exit(127);
  }
  ::close(to[0]);
  ::close(from[1]);
  return std::unique_ptr<SshChannel>(new PosixSshChannel(pid, from[0], to[1], errfd, target.Url()));
}

#endif

}  // namespace ckpt::net
