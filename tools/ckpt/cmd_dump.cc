// ckpt dump PID -D DIR [--tree] [--ipc KIND:ID]... [--external-pipes] [--leave-running] [--pre]
//           [--parent DIR] [--json] [--progress]
//           [--no-sync] [--image-mode MODE]
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "command.h"
#include "engine/engine.h"
#include "knobs.h"
#include "progress.h"

namespace ckpt::cli {

namespace {

struct DumpCliOptions {
  int pid = 0;
  bool tree = false;
  std::vector<std::string> ipc;
  std::string dir;
  bool external_pipes = false;
  std::vector<std::string> external_unix;
  bool leave_running = false;
  bool pre = false;
  std::string parent;
  bool json = false;
  bool progress = false;
  bool no_sync = false;
  unsigned image_mode = platform::kDefaultImageMode;
};

int Run(const DumpCliOptions& o) {
  engine::DumpOptions d;
  ApplyKnobs(KnobsFromEnvironment(platform::Env::Default()), &d);
  d.pid = o.pid;
  d.tree = o.tree;
  for (const auto& x : o.ipc) {
    auto colon = x.find(':');
    std::string kind = x.substr(0, colon);
    engine::IpcObjectId id;
    id.kind = kind == "shm" ? 's' : kind == "sem" ? 'e' : kind == "msg" ? 'q' : '?';
    if (colon == std::string::npos || id.kind == '?') {
      std::fprintf(stderr, "ckpt: error: --ipc wants shm:ID, sem:ID or msg:ID, not '%s'\n", x.c_str());
      return kExitUsage;
    }
    id.id = std::atoi(x.c_str() + colon + 1);
    d.ipc_ids.push_back(id);
  }
  d.dir = o.dir;
  d.image_mode = o.image_mode;
  d.external_pipes = o.external_pipes;
  d.external_unix = o.external_unix;
  d.leave_running = o.leave_running || o.pre;
  d.pre = o.pre;
  d.parent = o.parent;
  d.sync = !o.no_sync;
  ProgressLine line("dumping memory", o.progress);
  d.progress = [&line](std::uint64_t done, std::uint64_t total) { line.Update(done, total); };
  auto r = engine::Dump(d);
  if (!r.ok()) {
    ReportError(r.status());
    return kExitFailure;  // a failed dump is never a bad image
  }
  const engine::DumpStats& s = *r;
  if (!s.late_interruption.empty()) {
    std::fprintf(stderr, "ckpt: %s after the image was complete; the dump was finished\n",
                 s.late_interruption.c_str());
  }
  for (const auto& n : s.notes) std::fprintf(stderr, "ckpt: note: %s\n", n.c_str());
  if (o.json) {
    nlohmann::ordered_json j = {
        {"pid", o.pid},
        {"image", s.image_path},
        {"threads", s.threads},
        {"vmas", s.vmas},
        {"fds", s.fds},
        {"pages_stored", s.pages_stored},
        {"zero_pages_skipped", s.zero_pages_skipped},
        {"pages_inherited", s.pages_inherited},
        {"parent", o.parent.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(o.parent)},
        {"trackers_armed", s.trackers_armed},
        {"image_bytes", s.image_bytes},
        {"members", s.members},
        {"shared_objects", s.shared_objects},
        {"shared_bytes", s.shared_bytes},
        {"sysv_sem_sets", s.sysv_sems},
        {"sysv_msg_queues", s.sysv_queues},
        {"tree_meta_bytes", s.tree_meta_bytes},
        {"page_copy", s.page_copy},
        {"frozen_ms", s.frozen_ns / 1e6},
        {"total_ms", s.total_ns / 1e6},
        {"phases_ms",
         {{"precheck", s.phases.precheck_ns / 1e6},
          {"freeze", s.phases.freeze_ns / 1e6},
          {"collect", s.phases.collect_ns / 1e6},
          {"comm", s.phases.comm_ns / 1e6},
          {"pagemap", s.phases.pagemap_ns / 1e6},
          {"pages", s.phases.pages_ns / 1e6},
          {"finish", s.phases.finish_ns / 1e6},
          {"end", s.phases.end_ns / 1e6}}},
        {"left_running", d.leave_running},
        {"notes", s.notes}};
    PrintJson(j);
  } else {
    std::printf(
        "dumped process %d (%d processes) to %s: %d threads, %d mappings, %d fds, %s of memory, %d shared "
        "objects (%s), %d semaphore sets, %d message queues in %s image; frozen %.1f ms, total %.1f ms%s\n",
        o.pid, s.members, s.image_path.c_str(), s.threads, s.vmas, s.fds,
        HumanBytes(s.pages_stored * 4096).c_str(), s.shared_objects, HumanBytes(s.shared_bytes).c_str(),
        s.sysv_sems, s.sysv_queues, HumanBytes(s.image_bytes).c_str(), s.frozen_ns / 1e6, s.total_ns / 1e6,
        d.leave_running ? " (left running)" : " (killed)");
    if (!o.parent.empty()) {
      std::printf("incremental: %s stored, %s left to the parent image in %s\n",
                  HumanBytes(s.pages_stored * 4096).c_str(), HumanBytes(s.pages_inherited * 4096).c_str(),
                  o.parent.c_str());
    }
    if (o.pre) std::printf("dirty tracking armed in %d of %d processes\n", s.trackers_armed, s.members);
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
  c->add_flag("--tree", o->tree,
              "Dump the process and all its descendants, with the memory, System V objects and pipes they "
              "share");
  c->add_option("--ipc", o->ipc,
                "Also dump this System V object (shm:ID, sem:ID, msg:ID) besides those found in use "
                "(repeatable)");
  c->add_flag(
      "--external-pipes", o->external_pipes,
      "Accept pipes that a process outside the dumped set holds too (e.g. the other end of a shell "
      "pipeline, or stdout read by the caller): they are not saved, and the restore reopens them through "
      "a process that still holds them (without this option such a dump is refused)");
  c->add_option(
       "--external-unix", o->external_unix,
       "Accept a Unix socket connected to a process outside the dump that is bound to NAME (a path, or "
       "@ and an abstract name; e.g. /dev/log): the restore connects to NAME again (repeatable; refused "
       "without it, or with bytes queued from that peer)")
      ->type_name("NAME");
  c->add_flag("--leave-running", o->leave_running,
              "Let the processes continue after the dump (default: kill them and move their System V objects "
              "into the image)");
  c->add_flag("--pre", o->pre,
              "Pre-dump: leave the processes running (as --leave-running) with dirty-page tracking armed, so "
              "that a later dump with --parent stores only the pages written since");
  c->add_option("--parent", o->parent,
                "Incremental dump: store only the pages written since the image in this directory was "
                "dumped with --pre, and refer to it for the rest (a restore needs every image of the chain)")
      ->type_name("DIR");
  c->add_flag("--json", o->json, "Print a machine-readable summary");
  c->add_flag("--progress", o->progress, "Show a percentage on stderr even when it is not a terminal");
  c->add_flag("--no-sync", o->no_sync, "Do not fsync the image before renaming it into place");
  AddImageModeOption(c, &o->image_mode);
  c->footer(
      "The process is stopped while its state is read; see docs/engine.md for what is supported. "
      "Interrupting "
      "the dump (Ctrl-C, SIGTERM, SIGHUP, even SIGKILL) before the image is complete leaves the process as "
      "it "
      "was; afterwards the dump is finished.");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
