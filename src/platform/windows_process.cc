// ChildProcess on Windows: CreateProcessW into a kill-on-close job object,
// WaitForSingleObject, TerminateProcess; termination requests by a console
// control handler.
#include <windows.h>

#include <atomic>
#include <cstdlib>

#include "platform/process.h"
#include "platform/windows_util.h"

namespace ckpt::platform {

namespace {

// The job every child runs in. Its only handle is this process's (not
// inheritable), so when this process ends, however it ends, the job closes
// and Windows kills the children.
HANDLE ChildrenJob() {
  static HANDLE job = [] {
    HANDLE j = CreateJobObjectW(nullptr, nullptr);
    if (j == nullptr) return static_cast<HANDLE>(nullptr);
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if (!SetInformationJobObject(j, JobObjectExtendedLimitInformation, &info, sizeof info)) {
      CloseHandle(j);
      return static_cast<HANDLE>(nullptr);
    }
    return j;
  }();
  return job;
}

std::atomic<int> g_termination{0};

BOOL WINAPI OnConsoleControl(DWORD type) {
  int none = 0;
  g_termination.compare_exchange_strong(none, type == CTRL_C_EVENT ? 2 : 15);
  return TRUE;  // handled: the coordinator stops its members and ends in order
}

}  // namespace

void CatchTerminationRequests() {
  SetConsoleCtrlHandler(OnConsoleControl, TRUE);
}

int TerminationRequest() {
  return g_termination.load();
}

Result<int> SignalByName(const std::string& name) {
  return NotSupported("signal " + name + ": Windows has no POSIX signals");
}

Status CatchWarningSignal(int) {
  return NotSupported("Windows has no POSIX signals");
}

int WarningSignalsCaught() {
  return 0;
}

std::string SignalName(int sig) {
  return sig == 2 ? "Ctrl-C" : "a termination request";
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env, bool bound) {
  StartOptions o;
  o.bound = bound;
  return Start(argv, env, o);
}

namespace {

// An inheritable handle for the child's standard input (the null device) or
// output (appended to `path`); nullptr with GetLastError() set on failure.
HANDLE InheritableFile(const std::string& path, bool for_output) {
  SECURITY_ATTRIBUTES sa{};
  sa.nLength = sizeof sa;
  sa.bInheritHandle = TRUE;
  HANDLE h = for_output
                 ? CreateFileW(Widen(path).c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                               OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr)
                 : CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING,
                               FILE_ATTRIBUTE_NORMAL, nullptr);
  return h == INVALID_HANDLE_VALUE ? nullptr : h;
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env,
                                                          const StartOptions& o) {
  if (argv.empty()) return InvalidArgument("no program to run");
  for (const auto& e : env) {  // inherited by the child
    auto eq = e.find('=');
    SetEnvironmentVariableW(Widen(e.substr(0, eq)).c_str(), Widen(e.substr(eq + 1)).c_str());
  }
  std::wstring cmd;
  for (const auto& a : argv) {
    if (!cmd.empty()) cmd += L' ';
    cmd += L'"' + Widen(a) + L'"';
  }
  STARTUPINFOW si{};
  si.cb = sizeof si;
  HANDLE stdio[3] = {nullptr, nullptr, nullptr};
  auto close_stdio = [&stdio] {
    for (HANDLE& h : stdio) {
      if (h != nullptr) CloseHandle(h);
      h = nullptr;
    }
  };
  if (o.stdin_null || !o.stdout_path.empty() || !o.stderr_path.empty()) {
    const std::string* outs[2] = {&o.stdout_path, &o.stderr_path};
    stdio[0] = o.stdin_null ? InheritableFile("", false) : GetStdHandle(STD_INPUT_HANDLE);
    if (o.stdin_null && stdio[0] == nullptr) return WindowsError("open", "NUL", GetLastError());
    for (int i = 0; i < 2; ++i) {
      if (outs[i]->empty()) continue;
      stdio[i + 1] = InheritableFile(*outs[i], true);
      if (stdio[i + 1] == nullptr) {
        DWORD err = GetLastError();
        if (o.stdin_null) CloseHandle(stdio[0]);
        return WindowsError("open", *outs[i], err);
      }
    }
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = stdio[0];
    si.hStdOutput = stdio[1] != nullptr ? stdio[1] : GetStdHandle(STD_OUTPUT_HANDLE);
    si.hStdError = stdio[2] != nullptr ? stdio[2] : GetStdHandle(STD_ERROR_HANDLE);
    if (!o.stdin_null) stdio[0] = nullptr;  // not ours to close
  }
  PROCESS_INFORMATION pi{};
  std::wstring cwd = Widen(o.cwd);
  BOOL made = CreateProcessW(nullptr, cmd.data(), nullptr, nullptr, TRUE, CREATE_SUSPENDED, nullptr,
                             o.cwd.empty() ? nullptr : cwd.c_str(), &si, &pi);
  DWORD err = GetLastError();
  close_stdio();
  if (!made) return WindowsError("start", argv[0], err);
  // Into the job before it runs a single instruction (where jobs cannot nest,
  // it runs outside: a member still ends when its coordinator's channel closes).
  if (HANDLE job = o.bound ? ChildrenJob() : nullptr; job != nullptr)
    AssignProcessToJobObject(job, pi.hProcess);
  ResumeThread(pi.hThread);
  CloseHandle(pi.hThread);
  return std::unique_ptr<ChildProcess>(new ChildProcess(static_cast<std::int64_t>(pi.dwProcessId),
                                                        reinterpret_cast<std::intptr_t>(pi.hProcess)));
}

Status ExecProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  // As on POSIX, where the program replaces this process, what it starts may outlive it.
  auto child = ChildProcess::Start(argv, env, false);
  if (!child.ok()) return child.status();
  int status = (*child)->Wait();
  std::exit(status);
}

void ReapExitedChildren() {}

ChildProcess::~ChildProcess() {
  if (!status_ && !released_) Kill();
  CloseHandle(reinterpret_cast<HANDLE>(handle_));
}

std::optional<int> ChildProcess::Poll() {
  if (status_) return status_;
  HANDLE h = reinterpret_cast<HANDLE>(handle_);
  if (WaitForSingleObject(h, 0) != WAIT_OBJECT_0) return std::nullopt;
  DWORD code = 1;
  GetExitCodeProcess(h, &code);
  status_ = static_cast<int>(code);
  return status_;
}

int ChildProcess::Wait() {
  if (status_) return *status_;
  HANDLE h = reinterpret_cast<HANDLE>(handle_);
  WaitForSingleObject(h, INFINITE);
  DWORD code = 1;
  GetExitCodeProcess(h, &code);
  status_ = static_cast<int>(code);
  return *status_;
}

void ChildProcess::Terminate() {
  if (!status_) TerminateProcess(reinterpret_cast<HANDLE>(handle_), 143);
}

void ChildProcess::Kill() {
  if (status_) return;
  HANDLE h = reinterpret_cast<HANDLE>(handle_);
  TerminateProcess(h, 137);
  WaitForSingleObject(h, 5000);
  status_ = 137;
}

std::string ChildProcess::Describe(int status) {
  return "exit status " + std::to_string(status);
}

bool ChildProcess::EndedByInterrupt(int status) {
  return static_cast<DWORD>(status) == static_cast<DWORD>(STATUS_CONTROL_C_EXIT);
}

}  // namespace ckpt::platform
