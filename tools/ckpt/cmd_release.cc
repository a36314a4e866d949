// ckpt release PID [--exit] [--timeout S] [--json]: decide the hold of a
// program held by `ckpt checkpoint PID --hold` (or a migration): it
// continues, or it exits with status 75 without writing another image.
#include <cstdio>

#include "command.h"
#include "lib/control.h"

namespace ckpt::cli {

namespace {

struct ReleaseOptions {
  std::int64_t pid = 0;
  bool exit = false;
  double timeout = 60;
  bool json = false;
};

// Every failure here is "the operation failed" (status 1), a refusal included.
int ReleaseFailed(const Status& st) {
  ReportError(st);
  return kExitFailure;
}

int RunRelease(const ReleaseOptions& o) {
  platform::Env* env = platform::Env::Default();
  auto t = lib::FindProgram(env, o.pid);
  if (!t.ok()) return ReleaseFailed(t.status());
  Status st = lib::ReleaseHeld(env, *t, o.exit, o.timeout);
  if (!st.ok()) return ReleaseFailed(st);
  if (o.json) {
    nlohmann::ordered_json j = {{"pid", o.pid}, {"exited", o.exit}};
    PrintJson(j);
  } else if (o.exit) {
    std::printf("process %lld exited after its held checkpoint\n", static_cast<long long>(o.pid));
  } else {
    std::printf("process %lld continues\n", static_cast<long long>(o.pid));
  }
  return kExitOk;
}

}  // namespace

void AddRelease(CLI::App& app, Runner* run) {
  auto o = std::make_shared<ReleaseOptions>();
  CLI::App* c = app.add_subcommand(
      "release", "Decide the hold of a program held by `ckpt checkpoint PID --hold`: it continues, or exits");
  c->add_option("pid", o->pid, "Process id of the held ckpt program")->required();
  c->add_flag(
      "--exit", o->exit,
      "The program exits (status 75) without writing another image; its held image is the computation");
  c->add_option("--timeout", o->timeout, "Seconds to wait for the program to confirm (default 60)");
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->callback([run, o] { *run = [o] { return RunRelease(*o); }; });
}

}  // namespace ckpt::cli
