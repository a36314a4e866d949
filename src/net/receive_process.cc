// Receive(): process migrations (the transparent engine). The restore
// starts as soon as the spool file exists and runs beside the transfer
// (ReceiveConfig::restore_process): the tree is set up once the models have
// come and each member's pages are filled as they arrive, so that when the
// last byte is in, little is left to do. The rebuilt tree is held until the
// source commits.
#include <chrono>
#include <string>

#include "lib/resume_image.h"
#include "net/receive_internal.h"
#include "net/wire.h"
#include "platform/env.h"

namespace ckpt::net::internal {

// The restored processes keep their PIDs: each must be free here (unless
// they go into a new PID namespace).
Status PreflightProcess(Session* ss) {
  Session& s = *ss;
  if (s.hello.value("pidns", false)) return Status::Ok();
  platform::Env* env = platform::Env::Default();
  auto pids = s.hello.find("pids");
  if (pids == s.hello.end() || !pids->is_array()) return Status::Ok();
  for (const auto& p : *pids) {
    if (!p.is_number_integer()) continue;
    std::int64_t pid = p.get<std::int64_t>();
    if (pid > 0 && env->ProcessAlive(pid)) {
      return FailedPrecondition("PID " + std::to_string(pid) + " is taken on " + s.host +
                                " and the restored process needs it (free it, or migrate with --pidns)");
    }
  }
  return Status::Ok();
}

Status StartProcessRestore(Session* ss) {
  Session& s = *ss;
  ArrivingImage a;
  a.dir = s.dir;
  a.complete_marker = lib::CompleteMarker(s.image);
  a.limit = s.spool_free > 0 ? s.spool_free : std::uint64_t{1} << 50;
  if (s.hello.value("postcopy", false) && !s.s->Fds(&a.conn_read_fd, &a.conn_write_fd)) {
    s.step = "restore";
    return NotSupported("post-copy needs a connection over descriptors (ssh), not " + s.s->Describe());
  }
  auto r = s.cfg.restore_process(a, s.hello);
  if (!r.ok()) {
    s.step = "restore";
    return r.status();
  }
  s.proc = std::move(r).value();
  return Status::Ok();
}

Status RestoreProcess(Session* ss) {
  Session& s = *ss;
  s.step = "restore";
  ASSIGN_OR_RETURN(std::int64_t pid, s.proc->AwaitHeld());
  auto restore_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - s.arrived)
          .count();
  s.Log("restored process " + std::to_string(pid) + " as its image arrived (held " +
        std::to_string(restore_ns / 1000000) + " ms after the last byte)");
  s.MaybeDie("die-before-ready");
  nlohmann::json r = {{"pid", pid}, {"host", s.host}, {"restore_ns", restore_ns}, {"as_it_arrived", true}};
  RETURN_IF_ERROR(SendJson(s.s, FrameType::kReady, r));
  RETURN_IF_ERROR(s.AwaitCommit());
  s.step = "release";
  ASSIGN_OR_RETURN(nlohmann::json facts, s.proc->Release());
  // Post-copy: the copy here is kept only once every page came, so the
  // outcome record waits until then.
  const bool postcopy = facts.value("postcopy", false);
  s.Released(!postcopy);
  facts["host"] = s.host;
  RETURN_IF_ERROR(SendJson(s.s, FrameType::kDone, facts));
  if (facts.value("lazy", false)) {
    // It runs; its pages come in from the rounds spooled here, or (post-copy)
    // from the source over this connection, which the restore now speaks
    // on. The source keeps its copy until they are all in.
    s.step = "fill";
    if (postcopy) RETURN_IF_ERROR(s.proc->HandOver());
    ASSIGN_OR_RETURN(nlohmann::json filled, s.proc->AwaitFilled());
    s.proc.reset();
    if (postcopy) s.Released(true);
    s.Log("every page of the restored process is in");
    return SendJson(s.s, FrameType::kFilled, filled);
  }
  s.proc.reset();
  return Status::Ok();
}

}  // namespace ckpt::net::internal
