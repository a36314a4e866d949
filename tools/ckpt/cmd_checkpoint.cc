// ckpt checkpoint PID [--exit] [--timeout S] [--json]: ask a running ckpt
// program to write a checkpoint at its next safepoint, and wait for it.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "lib/registration.h"

namespace ckpt::cli {

namespace {

struct CheckpointOptions {
  std::int64_t pid = 0;
  bool exit = false;
  double timeout = 60;
  bool json = false;
  bool no_wait = false;
};

Result<nlohmann::json> ReadRegistration(platform::Env* env, std::int64_t pid) {
  std::string path = lib::Registration::PathFor(env, pid);
  auto data = platform::ReadFileToString(env, path);
  if (!data.ok()) {
    if (!env->ProcessAlive(pid)) return NotFound("no process " + std::to_string(pid) + " is running");
    return NotFound("process " + std::to_string(pid) + " is not a ckpt program (no registration " + path +
                    "; was it built with libckpt, and started without --ckpt-no-listen?)");
  }
  auto j = nlohmann::json::parse(*data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corruption("registration " + path + " is malformed");
  return j;
}

// True if the registration belongs to the process now running as `pid`
// (and not to an earlier process whose PID was reused).
bool SameProcess(platform::Env* env, std::int64_t pid, const nlohmann::json& reg) {
  std::uint64_t want = reg.value("start_time", std::uint64_t{0});
  if (want == 0) return true;
  return env->ProcessStartTime(pid) == want;
}

int Run(const CheckpointOptions& o) {
  platform::Env* env = platform::Env::Default();
  const std::string reg_path = lib::Registration::PathFor(env, o.pid);
  auto reg = ReadRegistration(env, o.pid);
  if (!reg.ok()) return ReportError(reg.status());
  if (!env->ProcessAlive(o.pid) || reg->value("exited", false) || !SameProcess(env, o.pid, *reg)) {
    env->RemoveFile(reg_path).IgnoreError();  // stale
    return ReportError(NotFound("no ckpt program runs as process " + std::to_string(o.pid) +
                                " (its registration was stale and has been removed)"));
  }
  std::uint64_t gen0 = reg->value("generation", std::uint64_t{0});
  std::string err0 = reg->value("last_error", std::string());
  Status st = env->SendCheckpointRequest(
      o.pid, o.exit ? platform::Request::kCheckpointAndExit : platform::Request::kCheckpoint);
  if (!st.ok()) return ReportError(st);
  if (o.no_wait) {
    if (!o.json) std::printf("requested a checkpoint of process %lld\n", static_cast<long long>(o.pid));
    return kExitOk;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout);
  nlohmann::json last = *reg;
  bool gone = false;
  while (std::chrono::steady_clock::now() < deadline) {
    // Check liveness before reading, so a final publish is never missed.
    bool alive = env->ProcessAlive(o.pid);
    auto r = ReadRegistration(env, o.pid);
    if (r.ok()) last = *r;
    if (last.value("generation", std::uint64_t{0}) > gen0) break;
    std::string err = last.value("last_error", std::string());
    if (r.ok() && !err.empty() && err != err0) {
      return ReportError(IoError("process " + std::to_string(o.pid) + " failed to checkpoint: " + err +
                                 " (its previous image is intact)"));
    }
    if (!alive) {
      gone = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::uint64_t gen = last.value("generation", std::uint64_t{0});
  if (gen <= gen0) {
    if (gone) {
      return ReportError(
          IoError("process " + std::to_string(o.pid) + " exited without writing a checkpoint"));
    }
    return ReportError(Timeout("process " + std::to_string(o.pid) + " reached no safepoint within " +
                               std::to_string(o.timeout) + " s; the request stays pending"));
  }
  std::string image = last.value("last_image", std::string());
  bool exited = false;
  if (o.exit) {
    for (int i = 0; i < 1000 && env->ProcessAlive(o.pid); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    exited = !env->ProcessAlive(o.pid);
    if (last.value("exited", false)) env->RemoveFile(reg_path).IgnoreError();
  }
  if (o.json) {
    nlohmann::ordered_json j = {{"pid", o.pid}, {"image", image}, {"generation", gen}, {"exited", exited}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", image.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddCheckpoint(CLI::App& app, Runner* run) {
  auto o = std::make_shared<CheckpointOptions>();
  CLI::App* c = app.add_subcommand(
      "checkpoint", "Ask a running ckpt program to checkpoint at its next safepoint; print the image path");
  c->add_option("pid", o->pid, "Process id of the program")->required();
  c->add_flag("--exit", o->exit, "Stop the program after the checkpoint (it exits with status 75)");
  c->add_option("--timeout", o->timeout, "Seconds to wait for the checkpoint (default 60)");
  c->add_flag("--no-wait", o->no_wait, "Send the request and return at once");
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
