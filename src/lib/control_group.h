// Finding a running dependent process group and asking its coordinator for
// checkpoints and holds: what `ckpt checkpoint GROUP` and `ckpt migrate
// GROUP` share. The group is found through its coordinator's owner-only
// registration (its loopback port and secret; docs/groups.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "group/protocol.h"
#include "lib/registration.h"
#include "platform/env.h"
#include "util/status.h"

namespace ckpt::lib {

// The registration of the running group named `name` (its name or id) in
// one of `dirs`; NotFound naming the groups that run. `refused` says why a
// runtime directory was skipped, for the message.
Result<RegistrationRecord> FindGroup(platform::Env* env, const std::vector<std::string>& dirs,
                                     const std::string& name, const std::string& refused);

// A checkpoint of the group (its members exit, status 75, with `exit`);
// waits up to `timeout` s (<= 0: no limit) for the image path.
Result<std::string> GroupCheckpoint(const RegistrationRecord& reg, bool exit, double timeout);

// A checkpoint whose members stay parked where they were (the coordinator
// delays their DONE) until DecideHeldGroup, on the same connection. If this
// process ends or the connection closes first, the members go on.
struct HeldGroup {
  std::string name;
  std::int64_t coordinator_pid = 0;
  std::string image;      // the image's file; empty when it was streamed
  bool streamed = false;  // the image came over the connection, to the pump
  std::unique_ptr<group::Channel> channel;
};
// Takes each piece of a streamed image, in order.
using ImagePump = std::function<Status(const std::string& piece)>;
// With `pump`, the image is asked for over the connection instead of in a
// file: the coordinator sends it (to `pump`) while the members are parked.
// A coordinator that writes a file anyway (other requesters were served by
// the same checkpoint, or it predates streamed holds) names it in `image`.
Result<HeldGroup> GroupCheckpointAndHold(const RegistrationRecord& reg, double timeout,
                                         const ImagePump& pump = nullptr);
// exit = true: the members stop (status 75) and, within `timeout` s, the
// coordinator has ended; false: they go on exactly where they were.
Status DecideHeldGroup(platform::Env* env, HeldGroup* held, bool exit, double timeout);

}  // namespace ckpt::lib
