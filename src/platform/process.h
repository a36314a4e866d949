// Child processes for the group coordinator: start without waiting, poll for
// exit, kill. posix_process.cc / windows_process.cc. Not thread-safe: one
// thread owns a ChildProcess.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace ckpt::platform {

class ChildProcess {
 public:
  // Starts argv[0] (searched in PATH) with `env` ("NAME=value") added to this
  // process's environment.
  static Result<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                     const std::vector<std::string>& env);
  ~ChildProcess();
  std::int64_t pid() const { return pid_; }
  // The exit status once it has exited (128+N for a POSIX signal N), else nullopt.
  std::optional<int> Poll();
  // Blocks until it exits; returns its exit status as Poll() does.
  int Wait();
  // Kills it (SIGKILL / TerminateProcess) and reaps it.
  void Kill();
  // "exit status 3", "killed by signal 9".
  static std::string Describe(int status);

 private:
  ChildProcess(std::int64_t pid, std::intptr_t handle) : pid_(pid), handle_(handle) {}
  std::int64_t pid_;
  std::intptr_t handle_;
  std::optional<int> status_;
};

// Runs a program to its end: ChildProcess::Start + Wait. Returns its exit
// status (128+N when killed by POSIX signal N).
Result<int> RunProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env);

// Becomes the program: on POSIX the calling process is replaced (execvp: same
// PID, signals go straight to the program); on Windows the program runs to its
// end and this process exits with its status. Returns only on failure.
Status ExecProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env);

}  // namespace ckpt::platform
