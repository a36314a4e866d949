#include "slurm_tools.h"

#include <atomic>
#include <cstdio>

#include "platform/process.h"

namespace ckpt::cli {

std::string SecondsText(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f s", s);
  return b;
}

Result<std::string> SlurmCommand(platform::Env* env, const std::vector<std::string>& argv) {
  static std::atomic<int> serial{0};
  std::string dir = env->RuntimeDir();
  RETURN_IF_ERROR(env->SecureRuntimeDir(dir, /*create=*/true));
  std::string base = platform::JoinPath(
      dir, "slurm-" + std::to_string(env->ProcessId()) + "-" + std::to_string(serial.fetch_add(1)));
  platform::StartOptions so;
  so.bound = false;
  so.stdin_null = true;
  so.stdout_path = base + ".out";
  so.stderr_path = base + ".err";
  auto child = platform::ChildProcess::Start(argv, {}, so);
  if (!child.ok()) return child.status().WithContext(argv.front() + " (is Slurm installed here?)");
  int st = (*child)->Wait();
  auto out = platform::ReadFileToString(env, so.stdout_path);
  auto err = platform::ReadFileToString(env, so.stderr_path);
  env->RemoveFile(so.stdout_path).IgnoreError();
  env->RemoveFile(so.stderr_path).IgnoreError();
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (st != 0) {
    std::string why = err.ok() ? err->substr(0, err->find('\n')) : "";
    return IoError("`" + cmd + "` failed (" + platform::ChildProcess::Describe(st) + ")" +
                   (why.empty() ? "" : ": " + why));
  }
  if (!out.ok()) return out.status().WithContext(cmd);
  return std::move(out).value();
}

}  // namespace ckpt::cli
