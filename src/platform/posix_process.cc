// ChildProcess on POSIX: fork + execve with a parent-death signal,
// waitpid(WNOHANG), SIGKILL; termination requests by signal handlers.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "platform/posix_util.h"
#include "platform/process.h"

extern char** environ;

namespace ckpt::platform {

namespace {

// execvp's search, done before fork: the path to run for `name`.
Result<std::string> FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* p = std::getenv("PATH");
  std::string path = p != nullptr ? p : "/usr/local/bin:/usr/bin:/bin";
  int err = ENOENT;
  for (std::size_t start = 0;;) {
    std::size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st;
    if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(cand.c_str(), X_OK) == 0) return cand;
      err = EACCES;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return PosixError("start", name, err);
}

std::atomic<int> g_termination{0};

extern "C" void OnTerminationSignal(int sig) {
  int none = 0;
  g_termination.compare_exchange_strong(none, sig);
}

std::atomic<int> g_warnings{0};

extern "C" void OnWarningSignal(int) {
  g_warnings.fetch_add(1);
}

}  // namespace

Result<int> SignalByName(const std::string& name) {
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
    int n = std::atoi(name.c_str());
    if (n > 0 && n < NSIG) return n;
    return InvalidArgument("no signal number " + name);
  }
  std::string n = name.rfind("SIG", 0) == 0 ? name.substr(3) : name;
  static const struct {
    const char* name;
    int sig;
  } kNames[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2},  {"TERM", SIGTERM}, {"INT", SIGINT},
                {"HUP", SIGHUP},   {"QUIT", SIGQUIT},  {"ALRM", SIGALRM}, {"URG", SIGURG},
                {"XCPU", SIGXCPU}, {"WINCH", SIGWINCH}};
  for (const auto& k : kNames) {
    if (n == k.name) return k.sig;
  }
  return InvalidArgument("unknown signal '" + name +
                         "' (USR1, USR2, TERM, INT, HUP, QUIT, ALRM, URG, XCPU, WINCH or a number)");
}

Status CatchWarningSignal(int sig) {
  struct sigaction sa {};
  sa.sa_handler = OnWarningSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (::sigaction(sig, &sa, nullptr) != 0) return PosixError("catch", "signal " + std::to_string(sig), errno);
  return Status::Ok();
}

int WarningSignalsCaught() {
  return g_warnings.load();
}

void CatchTerminationRequests() {
  struct sigaction sa {};
  sa.sa_handler = OnTerminationSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

int TerminationRequest() {
  return g_termination.load();
}

std::string SignalName(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal " + std::to_string(sig);
  }
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env, bool bound) {
  StartOptions o;
  o.bound = bound;
  return Start(argv, env, o);
}

namespace {

// Opens `path` for appending (0600 if created), or -1 with errno set.
int OpenForAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env,
                                                          const StartOptions& o) {
  if (argv.empty()) return InvalidArgument("no program to run");
  const bool bound = o.bound;
  // The descriptors the child gets as 0, 1, 2 (-1: inherited), opened here.
  int stdio[3] = {-1, -1, -1};
  auto close_stdio = [&stdio] {
    for (int& fd : stdio) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  };
  if (o.stdin_null && (stdio[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    return PosixError("open", "/dev/null", errno);
  const std::string* outs[2] = {&o.stdout_path, &o.stderr_path};
  for (int i = 0; i < 2; ++i) {
    if (outs[i]->empty()) continue;
    if ((stdio[i + 1] = OpenForAppend(*outs[i])) < 0) {
      int e = errno;
      close_stdio();
      return PosixError("open", *outs[i], e);
    }
  }
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    bool overridden = false;
    for (const auto& add : env) {
      auto eq = add.find('=');
      if (s.compare(0, eq + 1, add, 0, eq + 1) == 0) overridden = true;
    }
    if (!overridden) envs.push_back(s);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : envs) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  auto path = FindProgram(argv[0]);
  if (!path.ok()) return path.status();
  // After fork, only async-signal-safe calls: this process has other threads.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    int e = errno;
    close_stdio();
    return PosixError("start", argv[0], e);
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(report[0]);
    ::close(report[1]);
    close_stdio();
    return PosixError("start", argv[0], e);
  }
  if (pid == 0) {
    ::close(report[0]);
    // Never outlive the coordinator (the signal comes when the thread that
    // forked ends); if it has ended already, do not start at all.
    if (bound) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
    }
    int e = 0;
    if (o.new_session) ::setsid();
    for (int i = 0; i < 3 && e == 0; ++i) {
      if (stdio[i] >= 0 && ::dup2(stdio[i], i) < 0) e = errno;  // dup2 clears FD_CLOEXEC
    }
    if (e == 0 && !o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) e = errno;
    if (e == 0) {
      ::execve(path->c_str(), av.data(), ev.data());
      e = errno;
    }
    ssize_t w = ::write(report[1], &e, sizeof e);
    (void)w;
    ::_exit(127);
  }
  ::close(report[1]);
  close_stdio();
  int e = 0;
  ssize_t n;
  while ((n = ::read(report[0], &e, sizeof e)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (n == sizeof e) {  // exec failed: the pipe carried its errno
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return PosixError(o.cwd.empty() ? "start" : "start (in " + o.cwd + ")", argv[0], e);
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, 0));
}

Status ExecProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  if (argv.empty()) return InvalidArgument("no program to run");
  for (const auto& e : env) {
    auto eq = e.find('=');
    if (eq == std::string::npos) return InvalidArgument("malformed environment entry " + e);
    if (::setenv(e.substr(0, eq).c_str(), e.c_str() + eq + 1, 1) != 0)
      return PosixError("setenv", e.substr(0, eq), errno);
  }
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  ::execvp(argv[0].c_str(), av.data());
  return PosixError("run", argv[0], errno);
}

void ReapExitedChildren() {
  int st = 0;
  while (::waitpid(-1, &st, WNOHANG) > 0) {
  }
}

ChildProcess::~ChildProcess() {
  if (!status_ && !released_) Kill();
}

std::optional<int> ChildProcess::Poll() {
  if (status_) return status_;
  int st = 0;
  pid_t r = ::waitpid(static_cast<pid_t>(pid_), &st, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r < 0) {
    status_ = 255;  // not our child any more
  } else if (WIFEXITED(st)) {
    status_ = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    status_ = 128 + WTERMSIG(st);
  } else {
    return std::nullopt;
  }
  return status_;
}

int ChildProcess::Wait() {
  while (!status_) {
    int st = 0;
    pid_t r = ::waitpid(static_cast<pid_t>(pid_), &st, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      status_ = 255;
    else if (WIFEXITED(st))
      status_ = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
      status_ = 128 + WTERMSIG(st);
  }
  return *status_;
}

void ChildProcess::Terminate() {
  if (!status_) ::kill(static_cast<pid_t>(pid_), SIGTERM);
}

void ChildProcess::Kill() {
  if (status_) return;
  ::kill(static_cast<pid_t>(pid_), SIGKILL);
  int st = 0;
  while (::waitpid(static_cast<pid_t>(pid_), &st, 0) < 0 && errno == EINTR) {
  }
  status_ = 128 + SIGKILL;
}

std::string ChildProcess::Describe(int status) {
  if (status > 128 && status < 128 + 65) {
    return "killed by signal " + std::to_string(status - 128) + " (" + ::strsignal(status - 128) + ")";
  }
  return "exit status " + std::to_string(status);
}

bool ChildProcess::EndedByInterrupt(int status) {
  return status == 128 + SIGINT;
}

}  // namespace ckpt::platform
