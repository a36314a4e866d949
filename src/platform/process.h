// Child processes for the group coordinator: start without waiting, poll for
// exit, kill. posix_process.cc / windows_process.cc. Not thread-safe: one
// thread owns a ChildProcess.
//
// A child never outlives this process (unless started unbound): on Linux it gets SIGKILL when the
// thread that started it ends (PR_SET_PDEATHSIG; start children from a thread
// that lives as long as they should), on Windows it runs in a job object that
// kills it when this process's handle to the job closes
// (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE), however this process ends.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace ckpt::platform {

// How ChildProcess::Start sets up the child besides its arguments.
struct StartOptions {
  bool bound = true;        // dies with this process (see above); false: may outlive it
  std::string cwd;          // working directory ("" : this process's)
  bool stdin_null = false;  // standard input from the null device
  // Standard output and error appended to these files (created mode 0600
  // if absent); "" : inherited.
  std::string stdout_path, stderr_path;
  bool new_session = false;  // POSIX: setsid(), no controlling terminal
};

class ChildProcess {
 public:
  // Starts argv[0] (searched in PATH) with `env` ("NAME=value") added to this
  // process's environment.
  // `bound` = false: a plain child that may outlive this process (ExecProgram).
  static Result<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                     const std::vector<std::string>& env, bool bound = true);
  static Result<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                     const std::vector<std::string>& env,
                                                     const StartOptions& options);
  ~ChildProcess();
  std::int64_t pid() const { return pid_; }
  // The exit status once it has exited (128+N for a POSIX signal N), else nullopt.
  std::optional<int> Poll();
  // Blocks until it exits; returns its exit status as Poll() does.
  int Wait();
  // Kills it (SIGKILL / TerminateProcess) and reaps it.
  void Kill();
  // Asks it to end (SIGTERM; on Windows, where there is no such request,
  // TerminateProcess); does not wait.
  void Terminate();
  // Lets it run on: the destructor no longer kills it.
  void Release() { released_ = true; }
  // "exit status 3", "killed by signal 9".
  static std::string Describe(int status);
  // Whether a status is what Ctrl-C leaves: killed by SIGINT, or on Windows
  // STATUS_CONTROL_C_EXIT.
  static bool EndedByInterrupt(int status);

 private:
  ChildProcess(std::int64_t pid, std::intptr_t handle) : pid_(pid), handle_(handle) {}
  std::int64_t pid_;
  std::intptr_t handle_;
  std::optional<int> status_;
  bool released_ = false;
};

// Termination requests to this process (POSIX: SIGINT, SIGTERM, SIGHUP;
// Windows: Ctrl-C, Ctrl-Break, closing the console) no longer end it once
// CatchTerminationRequests() was called: TerminationRequest() then returns the
// POSIX signal number (Windows: 2 for Ctrl-C, 15 otherwise; 0 while none
// came), and the caller ends in order.
void CatchTerminationRequests();
int TerminationRequest();
// "SIGINT", "SIGTERM", "SIGHUP", or "signal N".
std::string SignalName(int sig);

// A scheduler's warning signal (`ckpt job`: Slurm's --signal, USR1 by
// default). SignalByName takes "USR1", "SIGUSR1" or a number; on Windows,
// which has no such signals, it fails. After CatchWarningSignal(sig) that
// signal no longer ends this process; WarningSignalsCaught() counts its
// arrivals (0 while none came).
Result<int> SignalByName(const std::string& name);
Status CatchWarningSignal(int sig);
int WarningSignalsCaught();

// Collects the exit status of every child that has ended and that no
// ChildProcess waits for any more (a daemon's released children: programs
// it started, processes it restored). Call only when no ChildProcess of this
// process is in use. No-op on Windows.
void ReapExitedChildren();

// Becomes the program: on POSIX the calling process is replaced (execvp: same
// PID, signals go straight to the program); on Windows the program runs to its
// end and this process exits with its status. Returns only on failure.
Status ExecProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env);

}  // namespace ckpt::platform
