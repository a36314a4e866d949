// ckpt restore -D DIR [--lazy] [--detach] [--pidns] [--ipc-ns host|new|auto] [--progress] [--json]
// [--trust-image]
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "command.h"
#include "engine/engine.h"
#include "knobs.h"
#include "progress.h"

namespace ckpt::cli {

namespace {

struct RestoreCliOptions {
  std::string dir;
  bool detach = false;
  bool pidns = false;
  std::string ipc_ns = "host";
  bool progress = false;
  bool json = false;
  bool trust_image = false;
  bool lazy = false;
};

void PrintRestoreJson(const engine::RestoreStats& s) {
  nlohmann::ordered_json j = {{"pid", s.pid},
                              {"processes", s.members},
                              {"ipc_namespace", s.new_ipc_ns ? "new" : "host"},
                              {"threads", s.threads},
                              {"pages", s.pages},
                              {"restore_ms", s.total_ns / 1e6},
                              {"vdso", s.vdso_proxy ? "proxy" : "moved"}};
  if (s.lazy) {
    j["lazy"] = {{"pages", s.lazy_pages},
                 {"faults", s.lazy_faults},
                 {"forks", s.lazy_forks},
                 {"fill_ms", s.fill_ns / 1e6}};
  }
  PrintJson(j);
}

int Run(const RestoreCliOptions& o) {
  engine::RestoreOptions r;
  ApplyKnobs(KnobsFromEnvironment(platform::Env::Default()), &r);
  r.dir = o.dir;
  r.detach = o.detach;
  r.new_pidns = o.pidns;
  r.trust_image = o.trust_image;
  r.lazy = o.lazy;
  r.ipc_ns = o.ipc_ns == "new"    ? engine::IpcNsMode::kNew
             : o.ipc_ns == "auto" ? engine::IpcNsMode::kAuto
                                  : engine::IpcNsMode::kHost;
  ProgressLine line("restoring memory", o.progress);
  r.progress = [&line](std::uint64_t done, std::uint64_t total) { line.Update(done, total); };
  // Prints before waiting: the restored process may run for a long time.
  r.on_running = [&o](const engine::RestoreStats& s) {
    if (o.json) {
      if (!s.lazy) PrintRestoreJson(s);  // a lazy restore's summary waits for its last page
    } else if (o.detach) {
      std::printf("%d\n", s.pid);
    } else {
      std::fprintf(stderr, "ckpt: restored process %d (%d threads) in %.1f ms%s\n", s.pid, s.threads,
                   s.total_ns / 1e6, s.lazy ? "; its memory fills in" : "");
    }
    std::fflush(stdout);
  };
  auto res = engine::Restore(r);
  if (!res.ok()) return ReportError(res.status());
  if (res->lazy) {
    line.End();
    if (o.json) {
      PrintRestoreJson(*res);
      std::fflush(stdout);
    } else {
      std::fprintf(stderr,
                   "ckpt: %llu pages filled after it ran, in %.1f ms (%llu first touches waited, %llu "
                   "processes forked meanwhile)\n",
                   static_cast<unsigned long long>(res->lazy_pages), res->fill_ns / 1e6,
                   static_cast<unsigned long long>(res->lazy_faults),
                   static_cast<unsigned long long>(res->lazy_forks));
    }
  }
  if (o.detach) return kExitOk;
  int st = res->exit_status;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return kExitFailure;
}

}  // namespace

void AddRestore(CLI::App& app, Runner* run) {
  auto o = std::make_shared<RestoreCliOptions>();
  CLI::App* c = app.add_subcommand("restore", "Restore a process dumped with `ckpt dump` and let it run");
  c->add_option("-D,--dir", o->dir, "Image directory written by `ckpt dump`")->required();
  c->add_flag(
      "--detach", o->detach,
      "Print the PID and return once the process runs (default: wait for it and exit with its status)");
  c->add_flag("--pidns", o->pidns, "Restore into a new PID namespace (when the PID is taken here)");
  c->add_option("--ipc-ns", o->ipc_ns,
                "Where System V objects are recreated with their ids and keys: host (this IPC namespace; "
                "fail if one is taken), new (a fresh IPC namespace for the restored processes), auto (host "
                "when all are free, else new)")
      ->check(CLI::IsMember({"host", "new", "auto"}));
  c->add_flag("--lazy", o->lazy,
              "Let the process run before the pages it takes from parent images (--parent dumps) are "
              "in: they are filled on first touch and in the background; ckpt returns once all are in, "
              "and if it dies before that the process is killed, never left with missing memory");
  c->add_flag("--progress", o->progress, "Show a percentage on stderr even when it is not a terminal");
  c->add_flag("--json", o->json, "Print a machine-readable summary once the process runs");
  c->add_flag(
      "--trust-image", o->trust_image,
      "Restore an image that belongs to another user, or that others may write (refused otherwise: its "
      "code would run with your privileges)");
  c->footer("The process gets its old PID when it is free; a failed restore leaves no process behind.");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
