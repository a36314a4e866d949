// ckpt dump PID -D DIR [--leave-running] [--json] [--progress] [--no-sync]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "command.h"
#include "engine/engine.h"
#include "progress.h"

namespace ckpt::cli {

namespace {

struct DumpCliOptions {
  int pid = 0;
  std::string dir;
  bool leave_running = false;
  bool json = false;
  bool progress = false;
  bool no_sync = false;
};

int Run(const DumpCliOptions& o) {
  engine::DumpOptions d;
  d.pid = o.pid;
  d.dir = o.dir;
  d.leave_running = o.leave_running;
  d.sync = !o.no_sync;
  ProgressLine line("dumping memory", o.progress);
  d.progress = [&line](std::uint64_t done, std::uint64_t total) { line.Update(done, total); };
  auto r = engine::Dump(d);
  if (!r.ok()) {
    ReportError(r.status());
    return kExitFailure;  // a failed dump is never a bad image
  }
  const engine::DumpStats& s = *r;
  if (o.json) {
    nlohmann::ordered_json j = {{"pid", o.pid},
                                {"image", s.image_path},
                                {"threads", s.threads},
                                {"vmas", s.vmas},
                                {"fds", s.fds},
                                {"pages_stored", s.pages_stored},
                                {"zero_pages_skipped", s.zero_pages_skipped},
                                {"image_bytes", s.image_bytes},
                                {"frozen_ms", s.frozen_ns / 1e6},
                                {"total_ms", s.total_ns / 1e6},
                                {"left_running", o.leave_running}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf(
        "dumped process %d to %s: %d threads, %d mappings, %d fds, %s of memory in %s image; "
        "frozen %.1f ms, total %.1f ms%s\n",
        o.pid, s.image_path.c_str(), s.threads, s.vmas, s.fds, HumanBytes(s.pages_stored * 4096).c_str(),
        HumanBytes(s.image_bytes).c_str(), s.frozen_ns / 1e6, s.total_ns / 1e6,
        o.leave_running ? " (left running)" : " (killed)");
  }
  return kExitOk;
}

}  // namespace

void AddDump(CLI::App& app, Runner* run) {
  auto o = std::make_shared<DumpCliOptions>();
  CLI::App* c = app.add_subcommand(
      "dump", "Checkpoint an unmodified running Linux process from outside (ptrace, /proc) into DIR");
  c->add_option("pid", o->pid, "Process to dump (all its threads)")->required();
  c->add_option("-D,--dir", o->dir, "Image directory; DIR/process.ckpt is replaced only when complete")
      ->required();
  c->add_flag("--leave-running", o->leave_running,
              "Let the process continue after the dump (default: kill it)");
  c->add_flag("--json", o->json, "Print a machine-readable summary");
  c->add_flag("--progress", o->progress, "Show a percentage on stderr even when it is not a terminal");
  c->add_flag("--no-sync", o->no_sync, "Do not fsync the image before renaming it into place");
  c->footer("The process is stopped while its state is read; see docs/engine.md for what is supported.");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
