// Finding a running dependent process group and asking its coordinator for
// checkpoints and holds: what `ckpt checkpoint GROUP` and `ckpt migrate
// GROUP` share. The group is found through its coordinator's owner-only
// registration (its loopback port and secret; docs/groups.md).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "group/protocol.h"
#include "platform/env.h"
#include "util/status.h"

namespace ckpt::cli {

// The registration of the running group named `name` (its name or id) in
// one of `dirs`; NotFound naming the groups that run. `refused` says why a
// runtime directory was skipped, for the message.
Result<nlohmann::json> FindGroup(platform::Env* env, const std::vector<std::string>& dirs,
                                 const std::string& name, const std::string& refused);

// A checkpoint of the group (its members exit, status 75, with `exit`);
// waits up to `timeout` s (<= 0: no limit) for the image path.
Result<std::string> GroupCheckpoint(const nlohmann::json& reg, bool exit, double timeout);

// A checkpoint whose members stay parked where they were (the coordinator
// delays their DONE) until DecideHeldGroup, on the same connection. If this
// process ends or the connection closes first, the members go on.
struct HeldGroup {
  std::string name;
  std::int64_t coordinator_pid = 0;
  std::string image;
  std::unique_ptr<group::Channel> channel;
};
Result<HeldGroup> GroupCheckpointAndHold(const nlohmann::json& reg, double timeout);
// exit = true: the members stop (status 75) and, within `timeout` s, the
// coordinator has ended; false: they go on exactly where they were.
Status DecideHeldGroup(platform::Env* env, HeldGroup* held, bool exit, double timeout);

}  // namespace ckpt::cli
