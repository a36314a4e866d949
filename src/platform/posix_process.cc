// ChildProcess on POSIX: posix_spawnp, waitpid(WNOHANG), SIGKILL.
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "platform/posix_util.h"
#include "platform/process.h"

extern char** environ;

namespace ckpt::platform {

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env) {
  if (argv.empty()) return InvalidArgument("no program to run");
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
  pid_t pid;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), nullptr, nullptr, av.data(), ev.data());
  if (rc != 0) return PosixError("start", argv[0], rc);
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

ChildProcess::~ChildProcess() {
  if (!status_) Kill();
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

}  // namespace ckpt::platform
