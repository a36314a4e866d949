// ckpt checkpoint PID [--exit|--hold] [--timeout S] [--json]: ask a running
// ckpt program to write a checkpoint at its next safepoint, and wait for it.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "image/reader.h"
#include "lib/control.h"
#include "lib/control_group.h"
#include "lib/program_image.h"
#include "lib/registration.h"
#include "platform/process.h"
#include "platform/secure.h"

namespace ckpt::cli {

namespace {

struct CheckpointOptions {
  std::string target;
  std::int64_t pid = 0;
  bool exit = false;
  double timeout = 60;
  bool json = false;
  bool no_wait = false;
  bool hold = false;
};

int CheckpointGroup(const lib::RegistrationRecord& reg, bool exit, double timeout, bool json) {
  auto image = lib::GroupCheckpoint(reg, exit, timeout);
  if (!image.ok()) return ReportError(image.status());
  if (json) {
    nlohmann::ordered_json j = {{"group", reg.group}, {"image", *image}, {"exited", exit}};
    PrintJson(j);
  } else {
    std::printf("%s\n", Printable(*image).c_str());
  }
  return kExitOk;
}

// `--hold`: the program waits, held, while this command runs. It ends when
// `ckpt release` decides (0), when the program released itself (0, with a
// note), or at SIGINT/SIGTERM/SIGHUP: it then releases the program, which
// continues, and exits 128+N. Killed outright, it leaves the program to
// notice that its requester is gone and continue by itself.
int WaitWhileHeld(platform::Env* env, const CheckpointOptions& o, const lib::ProgramTarget& t) {
  const std::string who = "process " + std::to_string(t.pid);
  for (;;) {
    if (int sig = platform::TerminationRequest(); sig != 0) {
      Status st = lib::ReleaseHeld(env, t, /*exit=*/false, o.timeout);
      if (!st.ok()) {
        std::fprintf(stderr, "ckpt: interrupted by %s: %s\n", platform::SignalName(sig).c_str(),
                     st.message().c_str());
      } else {
        std::fprintf(stderr, "ckpt: interrupted by %s: released %s, which continues\n",
                     platform::SignalName(sig).c_str(), who.c_str());
      }
      return 128 + sig;
    }
    bool alive = env->ProcessAlive(t.pid);
    auto reg = lib::ReadRegistrationFile(env, t.reg_path);
    if (!alive) {
      // `ckpt release --exit` collects the registration it was left.
      if (!reg.ok() || reg->exited) {
        std::fprintf(stderr, "ckpt: %s ended after the held checkpoint, as decided\n", who.c_str());
        return kExitOk;
      }
      return ReportError(IoError(who + " ended while held, without a decision"));
    }
    if (reg.ok() && !reg->held) {
      std::fprintf(stderr, "ckpt: %s is no longer held and continues\n", who.c_str());
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int RunHold(platform::Env* env, const CheckpointOptions& o, const lib::ProgramTarget& t) {
  platform::CatchTerminationRequests();  // from here on, a signal releases the program
  auto held = lib::CheckpointAndHold(env, t, o.timeout);
  if (!held.ok()) {
    ReportError(held.status());  // a refusal too: "the operation failed"
    return kExitFailure;
  }
  if (o.json) {
    nlohmann::ordered_json j = {{"pid", o.pid}, {"image", held->image},     {"generation", held->generation},
                                {"held", true}, {"program", held->program}, {"cwd", held->cwd}};
    PrintJson(j);
  } else {
    std::printf("%s\n", Printable(held->image).c_str());
  }
  std::fflush(stdout);
  std::fprintf(stderr,
               "ckpt: process %lld is held; decide with `ckpt release %lld` (it continues) or `ckpt release "
               "%lld --exit` (it exits, status 75); interrupting this command releases it\n",
               static_cast<long long>(o.pid), static_cast<long long>(o.pid), static_cast<long long>(o.pid));
  return WaitWhileHeld(env, o, t);
}

int Run(CheckpointOptions o) {
  platform::Env* env = platform::Env::Default();
  std::string refused;
  const std::vector<std::string> dirs = lib::UsableRuntimeDirs(env, &refused);
  bool numeric = !o.target.empty() && o.target.find_first_not_of("0123456789") == std::string::npos;
  if (!numeric) {
    auto reg = lib::FindGroup(env, dirs, o.target, refused);
    if (!reg.ok()) return ReportError(reg.status());
    if (o.hold)
      return ReportError(InvalidArgument("--hold is for single programs; group '" + o.target +
                                         "' is held only by `ckpt migrate " + o.target +
                                         "`, which decides on its own connection"));
    return CheckpointGroup(*reg, o.exit, o.timeout, o.json);
  }
  o.pid = std::stoll(o.target);
  auto found = lib::ReadRegistration(env, dirs, o.pid, refused);
  if (!found.ok()) return ReportError(found.status());
  if (found->reg.is_group() && env->ProcessAlive(o.pid)) {
    if (o.hold)
      return ReportError(IoError(
          "process " + o.target + " is the coordinator of group '" + found->reg.group +
          "': --hold is for single programs; a group is held only by `ckpt migrate`, which decides on its "
          "own connection"));
    return CheckpointGroup(found->reg, o.exit, o.timeout, o.json);
  }
  auto target = lib::CheckProgram(env, std::move(found));
  if (!target.ok()) return ReportError(target.status());
  if (o.hold) return RunHold(env, o, *target);
  Status st = lib::RequestCheckpoint(env, *target, o.exit);
  if (!st.ok()) return ReportError(st);
  if (o.no_wait) {
    if (!o.json) std::printf("requested a checkpoint of process %lld\n", static_cast<long long>(o.pid));
    return kExitOk;
  }
  auto out = lib::WaitForCheckpoint(env, *target, o.exit, o.timeout);
  if (!out.ok()) return ReportError(out.status());
  if (o.json) {
    nlohmann::ordered_json j = {
        {"pid", o.pid}, {"image", out->image}, {"generation", out->generation}, {"exited", out->exited}};
    PrintJson(j);
  } else {
    std::printf("%s\n", Printable(out->image).c_str());
  }
  return kExitOk;
}

}  // namespace

void AddCheckpoint(CLI::App& app, Runner* run) {
  auto o = std::make_shared<CheckpointOptions>();
  CLI::App* c = app.add_subcommand(
      "checkpoint",
      "Ask a running ckpt program, or a dependent process group, to checkpoint; print the image path");
  c->add_option("target", o->target,
                "Process id of a ckpt program, or a group: its name, id, or its coordinator's process id")
      ->required();
  auto* ex =
      c->add_flag("--exit", o->exit, "Stop the program after the checkpoint (it exits with status 75)");
  auto* hold = c->add_flag("--hold", o->hold,
                           "Hold the program after the checkpoint until `ckpt release PID [--exit]` decides; "
                           "print the image and wait (a signal to this command releases the program)");
  hold->excludes(ex);
  c->add_option("--timeout", o->timeout, "Seconds to wait for the checkpoint (default 60)");
  c->add_flag("--no-wait", o->no_wait, "Send the request and return at once")->excludes(hold);
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
