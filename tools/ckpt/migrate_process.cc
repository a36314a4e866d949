// Migrating an unmodified process with the transparent engine: the dump
// goes straight into the connection (no image file here), and the frozen
// processes end only once the target's restored copy runs (DONE); any
// failure before releases them where they were.
#include <cstdlib>

#include "command.h"
#include "engine/engine.h"
#include "engine/proc.h"
#include "migrate.h"
#include "net/handoff.h"
#include "progress.h"

namespace ckpt::cli {

namespace {

// Resident memory of `pid`: about what the image will need at the target.
std::uint64_t ResidentBytes(std::int64_t pid) {
  auto rss = engine::StatusField(static_cast<pid_t>(pid), "VmRSS");  // "1234 kB"
  return rss.ok() ? std::strtoull(rss->c_str(), nullptr, 10) * 1024 : 0;
}

// The process and, with `tree`, its descendants: the PIDs the target needs free.
std::vector<std::int64_t> TreePids(pid_t pid, bool tree) {
  std::vector<std::int64_t> out = {pid};
  for (std::size_t i = 0; tree && i < out.size() && out.size() < 100000; ++i) {
    for (pid_t c : engine::ListChildren(static_cast<pid_t>(out[i]))) out.push_back(c);
  }
  return out;
}

// The image to the target and, with --keep-image, into a file here too.
class TeeSink final : public image::Sink {
 public:
  TeeSink(image::Sink* a, image::Sink* b) : a_(a), b_(b) {}
  Status Append(const void* data, std::size_t size) override {
    RETURN_IF_ERROR(a_->Append(data, size));
    return b_ != nullptr ? b_->Append(data, size) : Status::Ok();
  }
  std::uint64_t Position() const override { return a_->Position(); }

 private:
  image::Sink* a_;
  image::Sink* b_;
};

}  // namespace

Result<MigrateReport> MigrateProcess(const MigrateOptions& o, Connection* c, std::int64_t pid) {
  platform::Env* env = platform::Env::Default();
  MigrateReport rep;
  rep.kind = "process";
  net::SourceHandoff h(c->stream.get());
  nlohmann::json hello = {{"id", NewMigrationId()},
                          {"kind", "process"},
                          {"name", engine::CommOf(static_cast<pid_t>(pid))},
                          {"tree", o.tree},
                          {"image_bytes", ResidentBytes(pid)},
                          {"pidns", o.pidns},
                          {"source_host", env->HostName()},
                          {"pids", TreePids(static_cast<pid_t>(pid), o.tree)}};
  ASSIGN_OR_RETURN(auto accept, Greet(o, &h, hello));
  // What the dump worker (a fork) learns in the handoff comes back here.
  net::ResultPipe res;
  if (!res.ok()) return IoError("cannot make a pipe for the handoff");
  engine::DumpOptions d;
  d.pid = static_cast<pid_t>(pid);
  d.tree = o.tree;
  d.external_pipes = o.external_pipes;
  ASSIGN_OR_RETURN(auto kept, KeptImage::Open(o, &h, "process.ckpt"));
  rep.kept_image = kept.path();
  TeeSink tee(h.sink(), kept.file());
  d.stream = &tee;
  TransferProgress prog(o.progress);
  const std::string host = accept.value("host", std::string("the target"));
  prog.Phase("dumping to " + host);
  d.progress = [&prog](std::uint64_t done, std::uint64_t total) { prog.Update(done, total); };
  std::int64_t t0 = SteadyNanos();
  const int wait_ms = static_cast<int>(o.timeout * 1000);
  // In the dump worker, with every member frozen and the image sent.
  d.handoff = [&](const engine::DumpStats& st) -> Status {
    std::int64_t t_end = SteadyNanos();
    // Ctrl-C (or SIGTERM, SIGHUP) while the target restores: the dump is
    // undone. Not after COMMIT: from then on the target's copy may run.
    c->stream->SetInterruptFd(engine::DumpInterruptFd());
    RETURN_IF_ERROR(kept.Commit());
    RETURN_IF_ERROR(h.EndImage());
    prog.Phase("restoring on " + host);
    nlohmann::json out = {
        {"image_bytes", h.sink()->Position()}, {"sent", h.sink()->sent()}, {"t_end", t_end}};
    auto ready = h.AwaitReady(wait_ms);
    if (!ready.ok()) return ready.status();
    out["ready"] = *ready;
    auto done = h.Commit(wait_ms);
    if (!done.ok() && h.committed()) {
      // COMMIT went out but DONE did not come back: ask the target again.
      auto outcome = AskOutcome(c, hello.value("id", std::string()));
      if (outcome.ok() && *outcome == "committed") {
        std::fprintf(
            stderr, "ckpt: the target's confirmation was lost, but its record says the process runs there\n");
        done = *ready;
      } else if (outcome.ok()) {
        res.Put(out.dump());
        return done.status().WithContext("the target did not take the commit");
      }
    }
    if (!done.ok()) {
      out["ambiguous"] = h.committed();
      res.Put(out.dump());
      return done.status();
    }
    out["done"] = *done;
    prog.End();
    out["t_done"] = SteadyNanos();
    res.Put(out.dump());
    (void)st;
    return Status::Ok();
  };
  auto r = engine::Dump(d);
  auto facts = nlohmann::json::parse(res.Take(), nullptr, false);
  if (!facts.is_object()) facts = nlohmann::json::object();
  if (!r.ok()) {
    h.Abort(r.status().message());
    if (facts.value("ambiguous", false)) {
      return Internal(r.status().message() + "; the target may be running it as pid " +
                      std::to_string(facts["ready"].value("pid", 0)) + " — the source runs on");
    }
    return r.status();
  }
  rep.ready = facts.value("ready", nlohmann::json::object());
  rep.done = facts.value("done", nlohmann::json::object());
  rep.image_bytes = facts.value("image_bytes", std::uint64_t{0});
  rep.bytes_sent = facts.value("sent", std::uint64_t{0});
  std::int64_t t_end = facts.value("t_end", t0);
  rep.checkpoint_ns = r->phases.precheck_ns + r->phases.freeze_ns;
  rep.transfer_ns = t_end - t0 - rep.checkpoint_ns;
  rep.restore_ns = rep.ready.value("restore_ns", std::int64_t{0});
  rep.downtime_ns = facts.value("t_done", t_end) - t0 - r->phases.precheck_ns;
  return rep;
}

}  // namespace ckpt::cli
