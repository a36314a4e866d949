// `ckpt list`: the ckpt programs and dependent process groups this user runs
// on this machine, from their registrations (lib/registration.h and the
// coordinator's); registrations of processes that are gone are removed on
// the way. A group's secret and port are never shown.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "lib/registration.h"
#include "program_control.h"

namespace ckpt::cli {

namespace {

struct ListOptions {
  bool json = false;
};

bool IsRegistrationName(const std::string& n) {
  if (n.size() < 6 || n.size() > 23 || n.compare(n.size() - 5, 5, ".json") != 0) return false;
  return std::all_of(n.begin(), n.end() - 5, [](char c) { return c >= '0' && c <= '9'; });
}

// This OS's part of a platform tag ("linux-x86_64" -> "linux").
std::string OsOf(const std::string& platform) {
  return platform.substr(0, platform.find('-'));
}

// One running program or group, as `ckpt list --json` prints it.
nlohmann::ordered_json Entry(const ProgramTarget& t) {
  const nlohmann::json& r = t.reg;
  nlohmann::ordered_json e;
  e["pid"] = t.pid;
  const bool group = r.value("kind", std::string()) == "group";
  e["kind"] = group ? "group" : "program";
  if (group) {
    e["name"] = JsonBytesValue(r, "group");
    e["id"] = JsonBytesValue(r, "id");
    e["members"] = r.value("members", 0);
  } else {
    e["name"] = JsonBytesValue(r, "program");
    e["exe"] = JsonBytesValue(r, "exe");
    e["platform"] = JsonBytesValue(r, "platform");
    e["state"] = r.value("held", false) ? "held" : "running";
    e["failures"] = r.value("failures", std::uint64_t{0});
  }
  e["checkpoints"] = r.value("generation", std::uint64_t{0});
  e["dir"] = JsonBytesValue(r, "dir");
  e["cwd"] = JsonBytesValue(r, "cwd");
  e["last_image"] = JsonBytesValue(r, "last_image");
  return e;
}

// Every live registration in `dirs`, by PID (stale ones were removed by
// UsableRuntimeDirs and CheckProgram).
std::vector<nlohmann::ordered_json> Collect(platform::Env* env, const std::vector<std::string>& dirs) {
  std::vector<nlohmann::ordered_json> out;
  std::vector<std::int64_t> seen;
  const std::string os = env->OsName();
  for (const std::string& d : dirs) {
    auto list = env->ListDir(d);
    if (!list.ok()) continue;
    for (const auto& f : *list) {
      if (!IsRegistrationName(f.name)) continue;
      const std::int64_t pid = std::stoll(f.name.substr(0, f.name.size() - 5));
      if (std::find(seen.begin(), seen.end(), pid) != seen.end()) continue;
      const std::string path = platform::JoinPath(d, f.name);
      auto data = env->ReadPrivateFile(path, lib::Registration::kMaxFileSize);
      if (!data.ok()) continue;
      auto reg = ParseRegistration(path, *data);
      if (!reg.ok()) continue;
      // A Windows program's PID means nothing to a Linux process, and the other way round.
      std::string plat = JsonBytesValue(*reg, "platform");
      if (!plat.empty() && OsOf(plat) != os) continue;
      ProgramTarget t{pid, std::move(reg).value(), path};
      // UsableRuntimeDirs collected the registrations of processes that are
      // gone; CheckProgram also drops a program that has exited.
      if (t.reg.value("kind", std::string()) != "group" && !CheckProgram(env, t).ok()) continue;
      seen.push_back(pid);
      out.push_back(Entry(t));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a["pid"].template get<std::int64_t>() < b["pid"].template get<std::int64_t>();
  });
  return out;
}

void PrintTable(const std::vector<nlohmann::ordered_json>& entries) {
  if (entries.empty()) {
    std::printf("no ckpt programs or groups are running\n");
    return;
  }
  std::printf("%-8s %-8s %-20s %-8s %-11s %s\n", "PID", "KIND", "NAME", "STATE", "CHECKPOINTS", "IMAGES IN");
  for (const auto& e : entries) {
    std::string name = e["name"].get<std::string>();
    std::string state = e.contains("state") ? e["state"].get<std::string>() : "running";
    if (e["kind"] == "group") name += " (" + std::to_string(e["members"].get<int>()) + " members)";
    PrintText("%-8lld %-8s %-20s %-8s %-11llu %s\n", static_cast<long long>(e["pid"].get<std::int64_t>()),
              e["kind"].get<std::string>().c_str(), name.c_str(), state.c_str(),
              static_cast<unsigned long long>(e["checkpoints"].get<std::uint64_t>()),
              e["dir"].get<std::string>().c_str());
  }
}

int Run(const ListOptions& o) {
  platform::Env* env = platform::Env::Default();
  std::string refused;
  const std::vector<std::string> dirs = UsableRuntimeDirs(env, &refused);
  std::vector<nlohmann::ordered_json> entries = Collect(env, dirs);
  if (!refused.empty()) std::fprintf(stderr, "ckpt: warning: %s\n", refused.c_str());
  if (o.json) {
    nlohmann::ordered_json j;
    j["running"] = entries;
    j["runtime_dirs"] = dirs;
    if (!refused.empty()) j["refused"] = refused;
    PrintJson(j);
  } else {
    PrintTable(entries);
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
