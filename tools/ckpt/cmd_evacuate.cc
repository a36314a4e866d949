// ckpt evacuate NODE: drain a Slurm node and move every `ckpt job` on it
// elsewhere: each checkpoints on its warning signal and requeues, and
// Slurm places it on another node. Jobs that are not ckpt jobs are never
// signalled: the drain waits for them (docs/schedulers.md).
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "command.h"
#include "slurm_tools.h"

namespace ckpt::cli {

namespace {

struct EvacuateOptions {
  std::string node;
  std::string reason = "ckpt evacuate";
  bool no_drain = false;
  double timeout = 300;
  bool json = false;
};

using Clock = std::chrono::steady_clock;

struct EvacJob {
  std::string id, signal, dir;
  bool managed = false;
  int restarts = 0;  // Slurm's count when signalled
  // What happened.
  std::string state, node, image, error, previous;
  double checkpoint_s = -1, moved_s = -1, lost_s = -1;
  bool checkpointed = false, requeued = false, resumed = false;
};

// `scontrol -o show job ID`: Key=Value words (values with spaces are cut,
// which the fields read here never have).
std::map<std::string, std::string> ShowJob(platform::Env* env, const std::string& id) {
  std::map<std::string, std::string> out;
  auto text = SlurmCommand(env, {"scontrol", "-o", "show", "job", id});
  if (!text.ok()) return out;
  std::istringstream in(*text);
  for (std::string w; in >> w;) {
    auto eq = w.find('=');
    if (eq != std::string::npos) out[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return out;
}

// What `ckpt job` left in the job's Comment: ckpt-job:SIGNAL:DIR.
void ParseMarker(const std::string& comment, EvacJob* j) {
  std::string marker = kJobMarker;
  if (comment.rfind(marker, 0) != 0) return;
  std::string rest = comment.substr(marker.size());
  auto colon = rest.find(':');
  if (colon == std::string::npos) return;
  j->managed = true;
  j->signal = rest.substr(0, colon);
  j->dir = rest.substr(colon + 1);
}

// Running jobs on the node, with what their Comment says about them.
Result<std::vector<EvacJob>> JobsOn(platform::Env* env, const std::string& node) {
  ASSIGN_OR_RETURN(std::string text,
                   SlurmCommand(env, {"squeue", "-h", "-w", node, "-t", "RUNNING", "-o", "%i|%k"}));
  std::vector<EvacJob> jobs;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto bar = line.find('|');
    if (line.empty() || bar == std::string::npos) continue;
    EvacJob j;
    j.id = line.substr(0, bar);
    ParseMarker(line.substr(bar + 1), &j);
    j.restarts = std::atoi(ShowJob(env, j.id)["Restarts"].c_str());
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// Reads the job record's events since `since` (seconds since the epoch: when
// the job was signalled, from which its move is timed).
void ReadRecord(platform::Env* env, EvacJob* j, double since) {
  auto text = platform::ReadFileToString(env, platform::JoinPath(j->dir, "job.json"));
  if (!text.ok()) return;
  auto rec = nlohmann::json::parse(*text, nullptr, false);
  if (!rec.is_object() || !rec.contains("events") || !rec["events"].is_array()) return;
  for (const auto& e : rec["events"]) {
    double t = e.value("time", 0.0);
    if (t < since) continue;
    std::string ev = e.value("event", "");
    if (ev == "checkpoint") {
      j->checkpointed = true;
      j->image = e.value("image", "");
      j->checkpoint_s = e.value("seconds", 0.0);
      j->lost_s = e.value("lost_seconds", 0.0);
    } else if (ev == "checkpoint-failed") {
      j->error = e.value("error", "");
      j->previous = e.value("previous", "");
      j->lost_s = e.value("lost_seconds", -1.0);
    } else if (ev == "requeue") {
      j->requeued = true;
    } else if (ev == "resume" && e.value("node", "") != "") {
      j->resumed = true;
      j->node = e.value("node", "");
      j->moved_s = t - since;
    }
  }
}

// Waits until the job has left the node and runs elsewhere (or ended, or
// the time is up), filling in what happened.
void Follow(platform::Env* env, const EvacuateOptions& o, EvacJob* j, double since,
            Clock::time_point deadline) {
  for (;;) {
    auto s = ShowJob(env, j->id);
    j->state = s["JobState"];
    bool elsewhere = j->state == "RUNNING" && s["NodeList"] != o.node;
    bool ended = j->state == "COMPLETED" || j->state == "FAILED" || j->state == "CANCELLED" || s.empty();
    ReadRecord(env, j, since);
    if (!j->requeued && std::atoi(s["Restarts"].c_str()) > j->restarts) j->requeued = true;
    bool failed_here = !j->error.empty() && !j->requeued;
    if ((elsewhere && j->resumed) || ended || failed_here || Clock::now() >= deadline) {
      if (elsewhere && j->node.empty()) j->node = s["NodeList"];
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// A checkpoint taken at the signal loses nothing; a failed one loses the
// work since the previous image.
std::string LostWork(const EvacJob& j) {
  std::string s = j.checkpointed ? "none" : (j.previous.empty() ? "all" : "since " + j.previous);
  if (!j.checkpointed && j.lost_s >= 0) s += " (" + SecondsText(j.lost_s) + ")";
  return s;
}

nlohmann::ordered_json EvacJson(const EvacJob& j) {
  nlohmann::ordered_json out = {{"job", j.id}, {"managed", j.managed}};
  if (!j.managed) return out;
  out.update({{"checkpointed", j.checkpointed},
              {"image", j.image},
              {"requeued", j.requeued},
              {"resumed_on", j.resumed ? nlohmann::ordered_json(j.node) : nlohmann::ordered_json()},
              {"state", j.state}});
  if (j.checkpoint_s >= 0) out["checkpoint_seconds"] = j.checkpoint_s;
  if (j.moved_s >= 0) out["moved_seconds"] = j.moved_s;
  out["lost_work"] = LostWork(j);
  if (j.lost_s >= 0) out["lost_seconds"] = j.lost_s;
  if (!j.error.empty()) out["error"] = j.error;
  return out;
}

void PrintJobLine(const EvacJob& j) {
  if (!j.managed) {
    std::printf("job %s: not a ckpt job; left running (the drain waits for it)\n", j.id.c_str());
    return;
  }
  std::string what = j.checkpointed ? "checkpointed to " + j.image : "checkpoint failed: " + j.error;
  if (j.checkpoint_s >= 0) what += " (" + SecondsText(j.checkpoint_s) + ")";
  std::string where = j.resumed ? "resumed on " + j.node + " after " + SecondsText(j.moved_s)
                                : "not yet resumed (" + j.state + ")";
  std::printf("job %s: %s; %s; %s; work lost: %s\n", j.id.c_str(), what.c_str(),
              j.requeued ? "requeued" : "not requeued", where.c_str(), LostWork(j).c_str());
}

int Run(const EvacuateOptions& o) {
  platform::Env* env = platform::Env::Default();
  if (!o.no_drain) {
    auto r =
        SlurmCommand(env, {"scontrol", "update", "NodeName=" + o.node, "State=DRAIN", "Reason=" + o.reason});
    if (!r.ok()) return ReportError(r.status());
  }
  auto jobs = JobsOn(env, o.node);
  if (!jobs.ok()) return ReportError(jobs.status());
  double since = static_cast<double>(env->NowNanos()) / 1e9;
  for (auto& j : *jobs) {
    if (!j.managed) continue;
    auto r = SlurmCommand(env, {"scancel", "--signal=" + j.signal, "--batch", j.id});
    if (!r.ok()) j.error = r.status().message();
  }
  if (!o.json)
    std::fprintf(stderr, "ckpt evacuate: %s %s; %zu job(s) on it\n", o.node.c_str(),
                 o.no_drain ? "not drained" : "drained", jobs->size());
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o.timeout * 1000));
  bool all = true;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (auto& j : *jobs) {
    if (j.managed && j.error.empty()) Follow(env, o, &j, since, deadline);
    all = all && (!j.managed || (j.checkpointed && j.requeued));
    if (o.json) {
      out.push_back(EvacJson(j));
    } else {
      PrintJobLine(j);
    }
  }
  if (o.json) PrintJson(nlohmann::ordered_json{{"node", o.node}, {"drained", !o.no_drain}, {"jobs", out}});
  return all ? kExitOk : kExitFailure;
}

struct RebalanceOptions {
  std::string job, to;
  double timeout = 300;
  bool json = false;
};

// Places the held, requeued job (on `to`, else anywhere but `from`) and
// releases it.
Status PlaceAndRelease(platform::Env* env, const RebalanceOptions& o, const std::string& from) {
  std::string where = o.to.empty() ? "ExcNodeList=" + from : "ReqNodeList=" + o.to;
  RETURN_IF_ERROR(SlurmCommand(env, {"scontrol", "update", "JobId=" + o.job, where}).status());
  return SlurmCommand(env, {"scontrol", "release", o.job}).status();
}

// Signals the job (which checkpoints and requeues held), places it, releases
// it and follows it until it has resumed.
Status Rebalance(platform::Env* env, const RebalanceOptions& o, const std::string& from, EvacJob* j) {
  double since = static_cast<double>(env->NowNanos()) / 1e9;
  RETURN_IF_ERROR(SlurmCommand(env, {"scancel", "--signal=" + j->signal, "--batch", j->id}).status());
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o.timeout * 1000));
  bool released = false;
  while (Clock::now() < deadline) {
    auto s = ShowJob(env, j->id);
    j->state = s["JobState"];
    ReadRecord(env, j, since);
    if (!released && j->requeued && j->state == "PENDING") {
      RETURN_IF_ERROR(PlaceAndRelease(env, o, from));
      released = true;
    }
    if (released && j->resumed && j->state == "RUNNING") return Status::Ok();
    if (j->state == "COMPLETED" || j->state == "FAILED" || j->state == "CANCELLED")
      return FailedPrecondition("job " + j->id + " ended (" + j->state + ") instead of moving");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Timeout("job " + j->id + " did not resume within " + std::to_string(static_cast<int>(o.timeout)) +
                 " s (" + j->state + ")");
}

// A refusal: nothing was done (exit status 1).
int Refused(const std::string& m) {
  std::fprintf(stderr, "ckpt: error: %s\n", m.c_str());
  return kExitFailure;
}

int RunRebalance(const RebalanceOptions& o) {
  platform::Env* env = platform::Env::Default();
  auto line = SlurmCommand(env, {"squeue", "-h", "-j", o.job, "-o", "%T|%N|%k"});
  if (!line.ok()) return ReportError(line.status());
  std::string text = line->substr(0, line->find('\n'));
  auto b1 = text.find('|'), b2 = text.find('|', b1 == std::string::npos ? 0 : b1 + 1);
  if (b1 == std::string::npos || b2 == std::string::npos) return Refused("no job " + o.job);
  EvacJob j;
  j.id = o.job;
  std::string state = text.substr(0, b1), from = text.substr(b1 + 1, b2 - b1 - 1);
  ParseMarker(text.substr(b2 + 1), &j);
  if (state != "RUNNING") return Refused("job " + o.job + " is " + state + ", not running");
  if (!j.managed)
    return Refused("job " + o.job + " is not a ckpt job (its script does not exec `ckpt job`): " +
                   "moving it would start it over; nothing was done");
  if (from == o.to) return Refused("job " + o.job + " runs on " + from + " already");
  // The job requeues held when it finds this file; removed if it never did.
  std::string hold = platform::JoinPath(j.dir, kHoldRequest);
  Status st = [&] {
    ASSIGN_OR_RETURN(auto f, env->NewWritableFile(hold));
    return f->Close();
  }();
  if (st.ok()) st = Rebalance(env, o, from, &j);
  env->RemoveFile(hold).IgnoreError();
  if (!st.ok() && j.error.empty()) j.error = st.message();
  if (o.json) {
    auto out = EvacJson(j);
    out["from"] = from;
    PrintJson(out);
  } else {
    std::printf("from %s: ", from.c_str());
    PrintJobLine(j);
  }
  return st.ok() ? kExitOk : kExitFailure;
}

}  // namespace

void AddRebalance(CLI::App& app, Runner* run) {
  auto o = std::make_shared<RebalanceOptions>();
  CLI::App* c = app.add_subcommand(
      "rebalance",
      "Move a running `ckpt job` to another Slurm node: it checkpoints, requeues held, is placed (--to NODE, "
      "else anywhere but its node) and released; report what happened. Refused for other jobs");
  c->add_option("job", o->job, "The Slurm job id")->required();
  c->add_option("--to", o->to, "The node to run on (default: any node but the current one)");
  c->add_option("--timeout", o->timeout, "Seconds to wait for the job to resume (default 300)");
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->callback([run, o] { *run = [o] { return RunRebalance(*o); }; });
}

void AddEvacuate(CLI::App& app, Runner* run) {
  auto o = std::make_shared<EvacuateOptions>();
  CLI::App* c = app.add_subcommand(
      "evacuate",
      "Drain a Slurm node and move every `ckpt job` on it: each checkpoints, requeues and resumes on another "
      "node; report per job. Other jobs are left running. Exit 1 if a ckpt job did not checkpoint and "
      "requeue");
  c->add_option("node", o->node, "The Slurm node name")->required();
  c->add_option("--reason", o->reason, "The drain's reason (default \"ckpt evacuate\")");
  c->add_flag("--no-drain", o->no_drain, "Move the jobs without draining the node");
  c->add_option("--timeout", o->timeout, "Seconds to wait for the jobs to resume elsewhere (default 300)");
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
