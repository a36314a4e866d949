// `ckpt list`: the ckpt programs and dependent process groups this user runs
// on this machine, from their registrations (lib/control.h); registrations
// of processes that are gone are removed on the way. A group's secret and port are never shown.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "lib/control.h"
#include "util/json_bytes.h"

namespace ckpt::cli {

namespace {

struct ListOptions {
  bool json = false;
};

// One running program or group, as `ckpt list --json` prints it.
nlohmann::ordered_json Entry(const lib::ProgramTarget& t) {
  const lib::RegistrationRecord& r = t.reg;
  nlohmann::ordered_json e;
  e["pid"] = t.pid;
  e["kind"] = r.is_group() ? "group" : "program";
  e["name"] = BytesToJson<nlohmann::ordered_json>(r.name());
  if (r.is_group()) {
    e["id"] = r.id;
    e["members"] = r.members;
  } else {
    e["exe"] = BytesToJson<nlohmann::ordered_json>(r.exe);
    e["platform"] = r.platform;
    e["state"] = r.held ? "held" : "running";
    e["failures"] = r.failures;
  }
  e["checkpoints"] = r.generation;
  e["dir"] = BytesToJson<nlohmann::ordered_json>(r.dir);
  e["cwd"] = BytesToJson<nlohmann::ordered_json>(r.cwd);
  e["last_image"] = BytesToJson<nlohmann::ordered_json>(r.last_image);
  return e;
}

void PrintTable(const std::vector<lib::ProgramTarget>& running) {
  if (running.empty()) {
    std::printf("no ckpt programs or groups are running\n");
    return;
  }
  std::printf("%-8s %-8s %-20s %-8s %-11s %s\n", "PID", "KIND", "NAME", "STATE", "CHECKPOINTS", "IMAGES IN");
  for (const lib::ProgramTarget& t : running) {
    const lib::RegistrationRecord& r = t.reg;
    std::string name = r.name();
    if (r.is_group()) name += " (" + std::to_string(r.members) + " members)";
    PrintText("%-8lld %-8s %-20s %-8s %-11llu %s\n", static_cast<long long>(t.pid),
              r.is_group() ? "group" : "program", name.c_str(), r.held ? "held" : "running",
              static_cast<unsigned long long>(r.generation), r.dir.c_str());
  }
}

int Run(const ListOptions& o) {
  platform::Env* env = platform::Env::Default();
  std::string refused;
  const std::vector<std::string> dirs = lib::UsableRuntimeDirs(env, &refused);
  const std::vector<lib::ProgramTarget> running = lib::ListRunning(env, dirs);
  if (!refused.empty()) std::fprintf(stderr, "ckpt: warning: %s\n", refused.c_str());
  if (o.json) {
    nlohmann::ordered_json j;
    nlohmann::ordered_json entries = nlohmann::ordered_json::array();
    for (const lib::ProgramTarget& t : running) entries.push_back(Entry(t));
    j["running"] = std::move(entries);
    j["runtime_dirs"] = dirs;
    if (!refused.empty()) j["refused"] = refused;
    PrintJson(j);
  } else {
    PrintTable(running);
  }
  return kExitOk;
}

}  // namespace

void AddList(CLI::App& app, Runner* run) {
  auto o = std::make_shared<ListOptions>();
  CLI::App* c = app.add_subcommand(
      "list", "List the ckpt programs and dependent process groups this user runs on this machine");
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
