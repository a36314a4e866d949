// ckpt check [--json]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "command.h"
#include "engine/engine.h"

namespace ckpt::cli {

namespace {

int Run(bool json) {
  auto items = engine::Check();
  bool ok = true;
  for (const auto& i : items) ok = ok && (i.ok || !i.required);
  if (json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const auto& i : items) {
      j.push_back({{"feature", i.name}, {"ok", i.ok}, {"required", i.required}, {"detail", i.detail}});
    }
    nlohmann::ordered_json top = {{"usable", ok}, {"features", j}};
    PrintJson(top);
  } else {
    for (const auto& i : items) {
      std::printf("%-22s %-4s %s%s\n", i.name.c_str(), i.ok ? "ok" : "NO", i.detail.c_str(),
                  !i.ok && i.required ? " [required]" : "");
    }
    std::printf("%s\n", ok ? "Looks good: dump and restore should work here."
                           : "Dump and restore cannot work here (see [required] above).");
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void AddCheck(CLI::App& app, Runner* run) {
  auto json = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("check", "Probe the kernel features the transparent engine needs");
  c->add_flag("--json", *json, "Print machine-readable JSON");
  c->callback([run, json] { *run = [json] { return Run(*json); }; });
}

}  // namespace ckpt::cli
