// ChildProcess on Windows: CreateProcessW, WaitForSingleObject, TerminateProcess.
#include <windows.h>

#include <cstdlib>

#include "platform/process.h"
#include "platform/windows_util.h"

namespace ckpt::platform {

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env) {
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
  PROCESS_INFORMATION pi{};
  if (!CreateProcessW(nullptr, cmd.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si, &pi))
    return WindowsError("start", argv[0], GetLastError());
  CloseHandle(pi.hThread);
  return std::unique_ptr<ChildProcess>(new ChildProcess(static_cast<std::int64_t>(pi.dwProcessId),
                                                        reinterpret_cast<std::intptr_t>(pi.hProcess)));
}

Status ExecProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  auto child = ChildProcess::Start(argv, env);
  if (!child.ok()) return child.status();
  int status = (*child)->Wait();
  std::exit(status);
}

ChildProcess::~ChildProcess() {
  if (!status_) Kill();
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

}  // namespace ckpt::platform
