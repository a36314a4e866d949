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
#include "net/remote_pages.h"
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
  std::vector<std::int64_t> out;
  for (pid_t p : tree ? engine::WithDescendants({pid}) : std::vector<pid_t>{pid}) out.push_back(p);
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

// Where a dump's time went, in ms (DumpStats::Phases).
nlohmann::json PhasesJson(const engine::DumpStats::Phases& ph) {
  return {{"freeze", ph.freeze_ns / 1e6},   {"collect", ph.collect_ns / 1e6}, {"comm", ph.comm_ns / 1e6},
          {"pagemap", ph.pagemap_ns / 1e6}, {"pages", ph.pages_ns / 1e6},     {"finish", ph.finish_ns / 1e6},
          {"handoff", ph.handoff_ns / 1e6}, {"end", ph.end_ns / 1e6}};
}

// A live migration's pre-copy rounds: each a dump of the running processes
// (state read frozen, tracking armed, pages copied while they run), the
// first whole, the next ones only what was written since the one before.
// Stops when the last round is small enough to send within half the
// downtime asked, when a round no longer shrinks by a tenth, or at the
// round limit. `*state` and `*parent` then name the last round for the
// final image.
Status PreCopy(const MigrateOptions& o, net::SourceHandoff* h, pid_t pid, TransferProgress* prog,
               std::string* state, std::string* parent, MigrateReport* rep) {
  std::uint64_t prev_pages = 0;
  std::int64_t prev_start = 0;
  double bytes_per_ms = 0;  // the link as the first (largest) round found it
  for (int k = 0;; ++k) {
    RETURN_IF_ERROR(h->BeginRound(k, false));
    engine::DumpOptions d;
    ApplyKnobs(o.knobs, &d);
    d.pid = pid;
    d.tree = o.tree;
    d.external_pipes = o.external_pipes;
    d.precopy = d.pre = d.leave_running = true;
    net::ImageSink sink(h->sink());
    d.stream = &sink;
    if (k > 0) {
      d.parent_state = *state;
      d.parent_path = "../round-" + std::to_string(k - 1);
    }
    prog->Phase("pre-copy round " + std::to_string(k));
    d.progress = [prog](std::uint64_t done, std::uint64_t total) { prog->Update(done, total); };
    // The image's end goes out from the dump's worker, which wrote the rest.
    d.handoff = [h](const engine::DumpStats&) { return h->EndImage(); };
    std::int64_t t = SteadyNanos();
    ASSIGN_OR_RETURN(engine::DumpStats st, engine::Dump(d));
    std::int64_t ns = SteadyNanos() - t;
    std::uint64_t bytes = st.image_bytes;  // written by the worker
    nlohmann::json r = {{"round", k},     {"pages", st.pages_stored}, {"pages_inherited", st.pages_inherited},
                        {"bytes", bytes}, {"ms", ns / 1e6},           {"frozen_ms", st.frozen_ns / 1e6}};
    // Pages written per second since the round before began.
    if (k > 0) r["dirty_mb_s"] = st.pages_stored * 4096.0 / ((t - prev_start) / 1e9) / 1e6;
    r["phases_ms"] = PhasesJson(st.phases);
    for (const auto& n : st.notes) r["notes"].push_back(n);
    rep->rounds.push_back(r);
    *state = st.delta_state;
    *parent = "round-" + std::to_string(k);
    // What the final image will hold is about what this round held: its
    // time to send at the first round's rate (later rounds are too small
    // to measure the link: their fixed costs dominate).
    if (k == 0 && ns > 0) bytes_per_ms = static_cast<double>(bytes) / (ns / 1e6);
    double send_ms = bytes_per_ms > 0 ? st.pages_stored * 4096.0 / bytes_per_ms : 0;
    r["final_estimate_ms"] = send_ms;
    if (k + 1 >= o.max_rounds) {
      rep->convergence = "round limit (" + std::to_string(o.max_rounds) + ")";
    } else if (k > 0 && send_ms <= o.max_downtime_ms / 2) {
      rep->convergence = "converged";
    } else if (k > 0 && st.pages_stored > prev_pages - prev_pages / 10) {
      rep->convergence = "not converging (the processes write as fast as a round is sent)";
    }
    if (!rep->convergence.empty()) return Status::Ok();
    prev_pages = st.pages_stored;
    prev_start = t;
  }
}

// --live and --lazy: what they cannot go with, before anything is sent.
Status CheckLiveModes(const MigrateOptions& o) {
  if (o.live && !o.keep_image.empty())
    return InvalidArgument(
        "--keep-image keeps a whole image; a live migration's last image needs its rounds");
  if (o.lazy && !o.keep_image.empty())
    return InvalidArgument(
        "--keep-image keeps a whole image; a post-copy image lacks the pages sent after it");
  // Each round's dump writes from a worker of its own, and post-copy's
  // target restore speaks on the connection itself: a TLS session's state
  // can do neither (an ssh pipe has none).
  if (o.to.rfind("ckpt://", 0) == 0 && (o.live || o.lazy))
    return NotSupported(std::string(o.live ? "--live" : "--lazy") +
                        " goes over ssh:// only for now (not ckpt://)");
  return Status::Ok();
}

// Post-copy, in the dump worker once the target's copy runs (DONE): the
// pages the image only listed go from the frozen processes here, then
// FILLED says the target has them all and this copy may end. If the link
// fails before every page went, the target cannot go on (its copy ends)
// and this one runs on; after, the target's outcome record decides.
Status ServeAfterDone(const MigrateOptions& o, Connection* c, const nlohmann::json& hello,
                      const std::string& host, const engine::DumpStats& st, TransferProgress* prog,
                      net::ResultPipe* res, nlohmann::json* out) {
  prog->Phase("sending memory to " + host);
  net::ServeReport sr;
  Status ss = net::ServePages(
      c->stream.get(), st.remote, static_cast<int>(o.timeout * 1000) + 600000,
      [prog](std::uint64_t done, std::uint64_t total) { prog->Update(done, total); }, &sr);
  (*out)["postcopy"] = {
      {"pages", sr.pages}, {"bytes", sr.bytes}, {"requests", sr.requests}, {"ms", sr.ns / 1e6}};
  Status result = ss;
  if (ss.ok()) {
    (*out)["filled"] = sr.filled;
  } else if (ss.code() == Code::kFailedPrecondition || !sr.all_sent) {
    // The target said its copy is gone, or it cannot have had every page.
    result =
        ss.WithContext(sr.all_sent ? "post-copy to " + host
                                   : "post-copy to " + host + " (the target's copy lacks pages and ends)");
  } else {
    auto outcome = AskOutcome(c, hello.value("id", std::string()));
    if (outcome.ok() && *outcome == "committed") {
      std::fprintf(stderr,
                   "ckpt: the target's last word was lost, but its record says the process runs there with "
                   "every page\n");
      result = Status::Ok();
    } else {
      if (!outcome.ok()) (*out)["ambiguous"] = true;
      result = ss.WithContext("post-copy to " + host);
    }
  }
  if (result.ok()) prog->End();
  res->Put(out->dump());
  return result;
}

// What the dump worker does with every member frozen and the image sent:
// the rest of the handoff (READY, COMMIT, DONE; post-copy or a lazy fill
// after it). What it learns goes to the command through `res`.
struct Handoff {
  const MigrateOptions& o;
  Connection* c;
  net::SourceHandoff* h;
  const nlohmann::json& hello;
  const std::string& host;
  TransferProgress* prog;
  net::ResultPipe* res;
  KeptImage* kept;
  int wait_ms;
};

Status AfterDump(const Handoff& x, const engine::DumpStats& st) {
  std::int64_t t_end = SteadyNanos();
  // Ctrl-C (or SIGTERM, SIGHUP) while the target restores: the dump is
  // undone. Not after COMMIT: from then on the target's copy may run.
  x.c->stream->SetInterruptFd(engine::DumpInterruptFd());
  RETURN_IF_ERROR(x.kept->Commit());
  RETURN_IF_ERROR(x.h->EndImage());
  x.prog->Phase("restoring on " + x.host);
  nlohmann::json out = {
      {"image_bytes", x.h->sink()->Position()}, {"sent", x.h->sink()->sent()}, {"t_end", t_end}};
  auto ready = x.h->AwaitReady(x.wait_ms);
  if (!ready.ok()) return ready.status();
  out["ready"] = *ready;
  auto done = x.h->Commit(x.wait_ms);
  if (!done.ok() && x.h->committed()) {
    // COMMIT went out but DONE did not come back: ask the target again.
    auto outcome = AskOutcome(x.c, x.hello.value("id", std::string()));
    if (outcome.ok() && *outcome == "committed") {
      std::fprintf(stderr,
                   "ckpt: the target's confirmation was lost, but its record says the process runs there\n");
      done = *ready;
    } else if (outcome.ok()) {
      x.res->Put(out.dump());
      return done.status().WithContext("the target did not take the commit");
    }
  }
  if (!done.ok()) {
    out["ambiguous"] = x.h->committed();
    x.res->Put(out.dump());
    return done.status();
  }
  out["done"] = *done;
  out["t_done"] = SteadyNanos();
  if (done->value("postcopy", false))
    return ServeAfterDone(x.o, x.c, x.hello, x.host, st, x.prog, x.res, &out);
  if (done->value("lazy", false)) {
    // It runs there while its pages come in from the rounds the target
    // holds: this copy stays (frozen) until all are in.
    x.prog->Phase("filling memory on " + x.host);
    auto filled = x.h->AwaitFilled(x.wait_ms + 600000);
    if (!filled.ok() && filled.status().code() == Code::kFailedPrecondition) {
      x.res->Put(out.dump());  // the target reported its copy gone: this one runs on
      return filled.status().WithContext("the target's copy failed while its memory filled in");
    }
    if (filled.ok()) {
      out["filled"] = *filled;
    } else {
      std::fprintf(stderr, "ckpt: warning: %s; the process runs on %s (it said so), so the copy here ends\n",
                   filled.status().message().c_str(), x.host.c_str());
    }
  }
  x.prog->End();
  x.res->Put(out.dump());
  return Status::Ok();
}

// The command's report from what the dump worker learned (`facts`) and the dump.
void Report(const nlohmann::json& facts, const engine::DumpStats& r, std::int64_t t0, MigrateReport* rep) {
  rep->ready = facts.value("ready", nlohmann::json::object());
  rep->done = facts.value("done", nlohmann::json::object());
  rep->filled = facts.value("filled", nlohmann::json());
  rep->postcopy = facts.value("postcopy", nlohmann::json());
  rep->image_bytes = facts.value("image_bytes", std::uint64_t{0});
  rep->bytes_sent = facts.value("sent", std::uint64_t{0});
  std::int64_t t_end = facts.value("t_end", t0);
  rep->final_phases = PhasesJson(r.phases);
  rep->checkpoint_ns = r.phases.precheck_ns + r.phases.freeze_ns;
  rep->transfer_ns = t_end - t0 - rep->checkpoint_ns;
  rep->restore_ns = rep->ready.value("restore_ns", std::int64_t{0});
  rep->downtime_ns = facts.value("t_done", t_end) - t0 - r.phases.precheck_ns;
}

}  // namespace

Result<MigrateReport> MigrateProcess(const MigrateOptions& o, Connection* c, std::int64_t pid) {
  platform::Env* env = platform::Env::Default();
  MigrateReport rep;
  rep.kind = "process";
  net::SourceHandoff h(c->stream.get(), o.knobs.migrate);
  nlohmann::json hello = {{"id", NewMigrationId()},
                          {"kind", "process"},
                          {"name", engine::CommOf(static_cast<pid_t>(pid))},
                          {"tree", o.tree},
                          {"image_bytes", ResidentBytes(pid)},
                          {"pidns", o.pidns},
                          {"source_host", env->HostName()},
                          {"pids", TreePids(static_cast<pid_t>(pid), o.tree)},
                          {"live", o.live},
                          {"postcopy", o.lazy}};
  RETURN_IF_ERROR(CheckLiveModes(o));
  ASSIGN_OR_RETURN(auto accept, Greet(o, &h, hello));
  const std::string host = accept.value("host", std::string("the target"));
  TransferProgress prog(o.progress);
  if (o.lazy && !accept.value("postcopy", false)) {
    h.Abort("post-copy is not possible here");
    return FailedPrecondition("the ckpt on " + host + " cannot receive post-copy migrations (upgrade it)");
  }
  std::string state, parent;
  if (o.live) {
    if (!accept.value("live", false))
      return FailedPrecondition("the ckpt on " + host + " cannot receive live migrations (upgrade it)");
    Status pc = PreCopy(o, &h, static_cast<pid_t>(pid), &prog, &state, &parent, &rep);
    if (!pc.ok()) {
      h.Abort(pc.message());
      return pc.WithContext("pre-copy round " + std::to_string(rep.rounds.size()));
    }
    RETURN_IF_ERROR(h.BeginRound(static_cast<int>(rep.rounds.size()), true));
  }
  // What the dump worker (a fork) learns in the handoff comes back here.
  net::ResultPipe res;
  if (!res.ok()) return IoError("cannot make a pipe for the handoff");
  engine::DumpOptions d;
  ApplyKnobs(o.knobs, &d);
  d.pid = static_cast<pid_t>(pid);
  d.tree = o.tree;
  d.external_pipes = o.external_pipes;
  d.parent_state = state;
  d.parent_path = parent;
  d.postcopy = o.lazy;
  ASSIGN_OR_RETURN(auto kept, KeptImage::Open(o, &h, "process.ckpt"));
  rep.kept_image = kept.path();
  net::ImageSink image(h.sink());
  TeeSink tee(&image, kept.file());
  d.stream = &tee;
  prog.Phase("dumping to " + host);
  d.progress = [&prog](std::uint64_t done, std::uint64_t total) { prog.Update(done, total); };
  std::int64_t t0 = SteadyNanos();
  const int wait_ms = static_cast<int>(o.timeout * 1000);
  const Handoff x{o, c, &h, hello, host, &prog, &res, &kept, wait_ms};
  d.handoff = [&x](const engine::DumpStats& st) { return AfterDump(x, st); };
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
  Report(facts, *r, t0, &rep);
  return rep;
}

}  // namespace ckpt::cli
