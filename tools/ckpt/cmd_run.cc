// ckpt run [-n N | --spec FILE] [options] [-- PROGRAM ARGS]: run a dependent
// process group of ckpt programs under a coordinator.
#include <cstdio>

#include "command.h"
#include "group/coordinator.h"
#include "group/spec.h"

namespace ckpt::cli {

namespace {

struct RunOptions {
  int n = 1;
  std::string spec;
  std::vector<std::string> command;
  group::CoordinatorOptions co;
};

int Run(RunOptions o) {
  std::vector<std::vector<std::string>> launches;
  if (!o.spec.empty()) {
    if (!o.command.empty())
      return ReportError(InvalidArgument("give either --spec FILE or -- PROGRAM, not both"));
    auto text = platform::ReadFileToString(platform::Env::Default(), o.spec);
    if (!text.ok()) return ReportError(text.status());
    auto parsed = group::ParseSpec(*text);
    if (!parsed.ok()) return ReportError(parsed.status().WithContext(o.spec));
    launches = std::move(parsed).value();
  } else {
    if (o.command.empty())
      return ReportError(InvalidArgument("nothing to run: ckpt run -n N -- PROGRAM ARGS"));
    if (o.n < 1 || o.n > 1024) return ReportError(InvalidArgument("-n wants 1 to 1024 members"));
    launches.assign(static_cast<std::size_t>(o.n), o.command);
  }
  if (o.co.name.empty()) o.co.name = DefaultGroupName(launches, o.spec);
  return group::RunGroup(platform::Env::Default(), o.co, launches);
}

}  // namespace

std::string DefaultGroupName(const std::vector<std::vector<std::string>>& launches, const std::string& spec) {
  if (!spec.empty()) {
    std::string b = platform::BaseName(spec);
    auto dot = b.find('.');
    return dot == std::string::npos || dot == 0 ? b : b.substr(0, dot);
  }
  for (const auto& w : launches.front()) {
    std::string b = platform::BaseName(w);
    if (b == "wine" || b == "wine64" || b.rfind("qemu-", 0) == 0) continue;  // launchers
    if (b.size() > 4 && b.compare(b.size() - 4, 4, ".exe") == 0) b.resize(b.size() - 4);
    return b;
  }
  return "group";
}

void AddGroupOptions(CLI::App* c, group::CoordinatorOptions* co) {
  c->add_option("--name", co->name, "Group name: image prefix, and what `ckpt checkpoint NAME` takes");
  c->add_option("--dir", co->dir, "Where group images go");
  c->add_option("--every", co->every_seconds, "Checkpoint the group every S seconds");
  c->add_option(
      "--timeout", co->timeout_seconds,
      "Seconds for every member to reach a quiescent point before a checkpoint is abandoned (default 30)");
  c->add_option("--keep", co->keep, "Group images kept in the directory (default 2)");
  c->add_option("--codec", co->codec, "none, zstd or zlib");
  c->add_option("--level", co->level, "Compression level");
  c->add_option("--stop-after", co->stop_after,
                "Stop the members (status 75) after this run's N-th checkpoint");
  c->add_flag("-q,--quiet", co->quiet, "No progress messages");
  AddImageModeOption(c, &co->image_mode);
}

void AddRun(CLI::App& app, Runner* run) {
  auto o = std::make_shared<RunOptions>();
  o->co.name.clear();
  CLI::App* c = app.add_subcommand(
      "run",
      "Run a dependent process group: ckpt run -n N -- PROGRAM ARGS, or ckpt run --spec FILE. "
      "Exits 0 when every member exits 0, 75 when they stopped after a checkpoint, 1 otherwise.");
  c->add_option("-n,--members", o->n, "Members of PROGRAM to run (default 1)");
  c->add_option("--spec", o->spec, "Group spec file: one member command per line ('2x CMD' repeats)");
  c->add_option("command", o->command, "Program and arguments (after --)");
  AddGroupOptions(c, &o->co);
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
