// The public control API (include/ckpt/control.hpp) over lib/control.h.
#include "ckpt/control.hpp"
#include "lib/control.h"
#include "lib/control_group.h"

namespace ckpt::control {

namespace {

[[noreturn]] void Throw(const Status& st) {
  throw Error("ckpt: " + st.message());
}

}  // namespace

std::vector<Running> List() {
  platform::Env* env = platform::Env::Default();
  std::string refused;
  std::vector<Running> out;
  for (const lib::ProgramTarget& t : lib::ListRunning(env, lib::UsableRuntimeDirs(env, &refused))) {
    const lib::RegistrationRecord& r = t.reg;
    Running e;
    e.pid = t.pid;
    e.group = r.is_group();
    e.name = r.name();
    e.held = r.held;
    e.checkpoints = r.generation;
    e.failures = r.failures;
    e.members = r.members;
    e.image_dir = r.dir;
    e.cwd = r.cwd;
    e.last_image = r.last_image;
    e.exe = r.exe;
    e.platform = r.platform;
    out.push_back(std::move(e));
  }
  return out;
}

Checkpointed Checkpoint(std::int64_t pid, const Request& request) {
  platform::Env* env = platform::Env::Default();
  auto t = lib::FindProgram(env, pid);
  if (!t.ok()) Throw(t.status());
  auto out = lib::Checkpoint(env, *t, request.exit, request.timeout_seconds);
  if (!out.ok()) Throw(out.status());
  return Checkpointed{out->image, out->generation, out->exited};
}

Checkpointed CheckpointGroup(const std::string& name, const Request& request) {
  platform::Env* env = platform::Env::Default();
  std::string refused;
  const std::vector<std::string> dirs = lib::UsableRuntimeDirs(env, &refused);
  auto reg = lib::FindGroup(env, dirs, name, refused);
  if (!reg.ok()) Throw(reg.status());
  auto image = lib::GroupCheckpoint(*reg, request.exit, request.timeout_seconds);
  if (!image.ok()) Throw(image.status());
  Checkpointed c;
  c.image = *image;
  if (request.exit) {
    // The members stop; the coordinator ends once they have.
    c.exited = lib::WaitGone(env, reg->pid, 10);
  }
  return c;
}

}  // namespace ckpt::control
