// ckpt job [options] -- PROGRAM ARGS: run a computation as a batch job that
// moves instead of starting over. It starts the work, or resumes it from the
// newest valid image in its directory; on the scheduler's warning signal it
// checkpoints, requeues the job (Slurm: `scontrol requeue`) and exits, so
// that the scheduler places it again (docs/schedulers.md).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "command.h"
#include "image/reader.h"
#include "lib/control.h"
#include "lib/control_group.h"
#include "lib/program_image.h"
#include "platform/process.h"
#include "slurm_tools.h"

namespace ckpt::cli {

namespace {

struct JobOptions {
  std::vector<std::string> command;
  std::string dir;
  std::string name;
  double every = 0;
  std::string signal = "USR1";
  int exit_code = kExitCheckpointed;
  std::string requeue = "auto";
  int members = 0;
  std::string spec;
  bool transparent = false;  // an unmodified process tree, through the engine
  double timeout = 120;
};

using Clock = std::chrono::steady_clock;

class Job {
 public:
  Job(platform::Env* env, JobOptions o) : env_(env), o_(std::move(o)) {}
  int Run();

 private:
  bool group() const { return o_.members > 0 || !o_.spec.empty(); }
  std::string SignalWord() const { return o_.signal.rfind("SIG", 0) == 0 ? o_.signal.substr(3) : o_.signal; }
  void Say(const std::string& m) const { std::fprintf(stderr, "ckpt job: %s\n", m.c_str()); }
  Status Prepare();
  Result<std::string> NewestValidImage();
  Status Start();
  void Announce(const std::string& from, const std::string& images);
  // --transparent: the tree image is DIR/tree/process.ckpt, replaced only
  // when a new one is complete (ckpt dump).
  std::string TreeDir() const { return platform::JoinPath(o_.dir, "tree"); }
  Status StartTransparent();
  Result<int> RestoreTree(bool pidns);
  Status RunSelf(const std::vector<std::string>& args);
  Result<std::string> DumpTree(bool leave_running);
  int Monitor();
  Result<std::string> CheckpointAndExit();
  Result<std::string> CheckpointProgram(Clock::time_point deadline);
  Result<std::string> CheckpointGroup(Clock::time_point deadline);
  void StopChild();
  int AfterCheckpoint(const std::string& image, double seconds, const std::string& why);
  int AfterFailedCheckpoint(const Status& st);
  // `scontrol requeue` of this job when it runs under Slurm (--requeue auto)
  // or always; false (with a message) when it did not happen.
  bool Requeue();
  // Leaves the marker `ckpt evacuate` looks for in the job's Comment.
  void MarkJob();
  std::string NewestImage();
  double ImageTime(const std::string& path);
  void Record(nlohmann::ordered_json event);

  platform::Env* env_;
  JobOptions o_;
  std::string job_id_, node_, record_path_;
  int restart_ = 0;
  std::unique_ptr<platform::ChildProcess> child_;
  double started_ = 0;         // this run's start, seconds since the epoch
  std::int64_t work_pid_ = 0;  // --transparent: the tree's root (the restored one after a resume)
  Clock::time_point next_dump_;
  nlohmann::ordered_json record_;
};

Status Job::Prepare() {
  if (o_.command.empty() && o_.spec.empty())
    return InvalidArgument("nothing to run: ckpt job [options] -- PROGRAM ARGS");
  if (!o_.spec.empty() && !o_.command.empty())
    return InvalidArgument("give either --spec FILE or -- PROGRAM, not both");
  if (o_.transparent && group())
    return InvalidArgument("--transparent runs one program (its whole process tree); not with -n or --spec");
  if (o_.requeue != "auto" && o_.requeue != "always" && o_.requeue != "never")
    return InvalidArgument("--requeue wants auto, always or never");
  if (o_.exit_code < 0 || o_.exit_code > 255) return InvalidArgument("--exit-code wants 0 to 255");
  ASSIGN_OR_RETURN(int sig, platform::SignalByName(o_.signal));
  RETURN_IF_ERROR(platform::CatchWarningSignal(sig));
  platform::CatchTerminationRequests();
  job_id_ = env_->GetEnv("SLURM_JOB_ID");
  node_ = env_->GetEnv("SLURMD_NODENAME");
  if (node_.empty()) node_ = env_->HostName();
  if (std::string r = env_->GetEnv("SLURM_RESTART_COUNT"); !r.empty()) restart_ = std::atoi(r.c_str());
  if (o_.dir.empty()) o_.dir = job_id_.empty() ? "ckpt-job" : "ckpt-job-" + job_id_;
  o_.dir = env_->AbsolutePath(o_.dir);
  RETURN_IF_ERROR(env_->CreateDirs(o_.dir).WithContext("image directory"));
  if (o_.name.empty()) o_.name = DefaultGroupName({o_.command}, o_.spec);  // `ckpt run`'s naming
  if (!o_.spec.empty()) o_.spec = env_->AbsolutePath(o_.spec);
  record_path_ = platform::JoinPath(o_.dir, "job.json");
  if (auto text = platform::ReadFileToString(env_, record_path_); text.ok()) {
    record_ = nlohmann::ordered_json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!record_.is_object()) {
      Say("warning: " + record_path_ + " is not a job record; starting a new one");
      record_ = nlohmann::ordered_json::object();
    }
  }
  if (!record_.contains("events") || !record_["events"].is_array())
    record_["events"] = nlohmann::ordered_json::array();
  record_["name"] = o_.name;
  record_["kind"] = o_.transparent ? "transparent" : group() ? "group" : "program";
  record_["dir"] = o_.dir;
  if (!job_id_.empty()) record_["job"] = job_id_;
  return Status::Ok();
}

void Job::Record(nlohmann::ordered_json event) {
  nlohmann::ordered_json e = {
      {"time", static_cast<double>(env_->NowNanos()) / 1e9}, {"node", node_}, {"restart", restart_}};
  e.update(event);
  record_["events"].push_back(e);
  // A path or message that is not UTF-8 is written with U+FFFD, never refused.
  std::string text = record_.dump(1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  // A new file under a random name, renamed over the record: a reader sees
  // the old record or the new one, never a torn one.
  Status st = platform::WriteFileAtomic(env_, record_path_, text, /*durable=*/false);
  if (!st.ok()) Say("warning: cannot update the job record " + record_path_ + ": " + st.message());
}

// The newest image of the work in the directory that reads back whole and
// is of its kind; "" when there is none. Damaged newer ones are named and
// skipped.
Result<std::string> Job::NewestValidImage() {
  ASSIGN_OR_RETURN(auto images, lib::ListImages(env_, o_.dir, o_.name));
  for (const auto& path : images) {  // paths, newest first
    auto src = env_->NewRandomAccessFile(path);
    Status st = src.status();
    if (src.ok()) {
      auto r = image::ImageReader::Open(std::move(src).value());
      st = r.ok() ? (*r)->VerifyAll() : r.status();
      auto want = group() ? image::ImageKind::kGroup : image::ImageKind::kProgram;
      if (st.ok() && (*r)->header().kind != want)
        st = InvalidArgument(std::string("not a ") + (group() ? "group" : "program") + " image");
    }
    if (st.ok()) return path;
    Say("warning: skipping " + path + ": " + st.message());
  }
  if (!images.empty())
    return Corruption("none of the " + std::to_string(images.size()) + " images of " + o_.name + " in " +
                      o_.dir + " reads back whole: not starting over (remove them to start afresh)");
  return std::string();
}

// When a libckpt or group image was written (META time.ns), in seconds
// since the epoch; 0 when it cannot tell (an engine image, a damaged one).
double Job::ImageTime(const std::string& path) {
  auto src = env_->NewRandomAccessFile(path);
  if (!src.ok()) return 0;
  auto r = image::ImageReader::Open(std::move(src).value());
  if (!r.ok()) return 0;
  const auto* ms = (*r)->Find(lib::kSectionMeta);
  if (ms == nullptr) return 0;
  auto data = (*r)->ReadSection(*ms);
  lib::Meta meta;
  if (!data.ok() || !lib::DecodeMeta(*data, &meta).ok()) return 0;
  return std::atof(meta.Get("time.ns").c_str()) / 1e9;
}

std::string Job::NewestImage() {
  if (o_.transparent) {
    std::string tree = platform::JoinPath(TreeDir(), "process.ckpt");
    return env_->FileExists(tree) ? tree : "";
  }
  auto images = lib::ListImages(env_, o_.dir, o_.name);
  if (!images.ok() || images->empty()) return "";
  return images->front();
}

Status Job::Start() {
  if (o_.transparent) return StartTransparent();
  std::vector<std::string> argv, envs;
  ASSIGN_OR_RETURN(std::string from, NewestValidImage());
  if (!group()) {
    argv = o_.command;
    // Without a valid image, `auto` starts fresh only where there is no
    // image at all: damaged ones make the program refuse, never start over.
    envs = {"CKPT_DIR=" + o_.dir, "CKPT_RESUME=" + (from.empty() ? std::string("auto") : from),
            "CKPT_NAME=" + o_.name};
    if (o_.every > 0) envs.push_back("CKPT_EVERY=" + std::to_string(o_.every));
  } else {
    std::string self = env_->ExecutablePath();
    if (from.empty()) {
      argv = {self, "run", "--name", o_.name, "--dir", o_.dir};
      if (!o_.spec.empty()) {
        argv.insert(argv.end(), {"--spec", o_.spec});
      } else {
        argv.insert(argv.end(), {"-n", std::to_string(o_.members)});
      }
    } else {
      argv = {self, "resume", from, "--name", o_.name, "--dir", o_.dir};
      if (!o_.spec.empty()) argv.insert(argv.end(), {"--spec", o_.spec});
    }
    if (o_.every > 0) argv.insert(argv.end(), {"--every", std::to_string(o_.every)});
    if (!o_.command.empty() && from.empty()) {
      argv.push_back("--");
      argv.insert(argv.end(), o_.command.begin(), o_.command.end());
    }
  }
  Announce(from, o_.dir);
  ASSIGN_OR_RETURN(child_, platform::ChildProcess::Start(argv, envs));
  Record({{"event", from.empty() ? "start" : "resume"},
          {"image", from},
          {"pid", child_->pid()},
          {"began", started_}});
  MarkJob();
  return Status::Ok();
}

void Job::Announce(const std::string& from, const std::string& images) {
  Say((job_id_.empty() ? std::string("job") : "job " + job_id_) + " on " + node_ +
      (restart_ > 0 ? " (restart " + std::to_string(restart_) + ")" : "") + ": " +
      (from.empty() ? "starting " + o_.name : "resuming " + o_.name + " from " + from) + "; images in " +
      images + ", checkpoint on SIG" + SignalWord());
  std::fflush(stderr);
}

// `ckpt VERB ...` of this build; its standard output (a summary, or
// --json) goes to DIR/VERB.out, not into the job's output.
Status Job::RunSelf(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {env_->ExecutablePath()};
  argv.insert(argv.end(), args.begin(), args.end());
  platform::StartOptions so;
  so.stdout_path = platform::JoinPath(o_.dir, args.front() + ".out");
  env_->RemoveFile(so.stdout_path).IgnoreError();
  ASSIGN_OR_RETURN(auto c, platform::ChildProcess::Start(argv, {}, so));
  int st = c->Wait();
  if (st != 0)
    return IoError("`ckpt " + args.front() + "` ended with " + platform::ChildProcess::Describe(st));
  return Status::Ok();
}

Result<std::string> Job::DumpTree(bool leave_running) {
  std::vector<std::string> args = {"dump", std::to_string(work_pid_), "-D", TreeDir(), "--tree", "--json"};
  if (leave_running) args.push_back("--leave-running");
  RETURN_IF_ERROR(RunSelf(args));
  return NewestImage();
}

// The unmodified program itself, or `ckpt restore` of its tree (which stays
// its parent and ends with its status): its --json line names the root.
// `ckpt restore` of the tree, which stays its parent and ends with its
// status; its --json names the root. Returns the exit status of a restore
// that ended before the process ran (0 while it runs).
Result<int> Job::RestoreTree(bool pidns) {
  platform::StartOptions so;
  so.stdout_path = platform::JoinPath(o_.dir, "restore.json");
  env_->RemoveFile(so.stdout_path).IgnoreError();
  std::vector<std::string> argv = {env_->ExecutablePath(), "restore", "-D", TreeDir(), "--json"};
  if (pidns) argv.push_back("--pidns");
  ASSIGN_OR_RETURN(child_, platform::ChildProcess::Start(argv, {}, so));
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o_.timeout * 1000));
  for (;;) {
    auto text = platform::ReadFileToString(env_, so.stdout_path);
    auto j = nlohmann::json::parse(text.ok() ? *text : "", nullptr, false);
    if (j.is_object() && j.contains("pid")) {
      work_pid_ = j["pid"].get<std::int64_t>();
      return 0;
    }
    if (auto st = child_->Poll()) return *st;
    if (Clock::now() >= deadline)
      return Timeout("`ckpt restore -D " + TreeDir() + "` did not report its process");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The unmodified program itself, or its tree restored. On another node its
// PIDs may be taken (a fresh PID namespace hands out the same small numbers):
// a restore that fails (status 1, not a bad image's 3) is tried again in a
// new PID namespace, where they are free.
Status Job::StartTransparent() {
  std::string from = NewestImage();
  Announce(from, TreeDir());
  if (from.empty()) {
    ASSIGN_OR_RETURN(child_, platform::ChildProcess::Start(o_.command, {}));
    work_pid_ = child_->pid();
  } else {
    ASSIGN_OR_RETURN(int st, RestoreTree(/*pidns=*/false));
    if (st == kExitFailure) {
      Say("restoring " + from + " in a new PID namespace");
      ASSIGN_OR_RETURN(st, RestoreTree(/*pidns=*/true));
    }
    if (st != 0)
      return IoError("cannot restore " + from + ": `ckpt restore` ended with " +
                     platform::ChildProcess::Describe(st));
  }
  Record({{"event", from.empty() ? "start" : "resume"},
          {"image", from},
          {"pid", work_pid_},
          {"began", started_}});
  MarkJob();
  next_dump_ = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o_.every * 1000));
  return Status::Ok();
}

Result<std::string> Job::CheckpointProgram(Clock::time_point deadline) {
  // A program that has just started may not have registered yet.
  for (;;) {
    auto t = lib::FindProgram(env_, child_->pid());
    if (t.ok()) {
      double left = std::chrono::duration<double>(deadline - Clock::now()).count();
      ASSIGN_OR_RETURN(lib::Outcome out, lib::Checkpoint(env_, *t, /*exit=*/true, left > 1 ? left : 1));
      return out.image;
    }
    if (child_->Poll() || Clock::now() >= deadline)
      return t.status().WithContext(o_.name + " (is it a libckpt program?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<std::string> Job::CheckpointGroup(Clock::time_point deadline) {
  for (;;) {
    std::string refused;
    auto dirs = lib::UsableRuntimeDirs(env_, &refused);
    auto t = lib::ReadRegistration(env_, dirs, child_->pid(), refused);
    if (t.ok()) {
      double left = std::chrono::duration<double>(deadline - Clock::now()).count();
      return lib::GroupCheckpoint(t->reg, /*exit=*/true, left > 1 ? left : 1);
    }
    if (child_->Poll() || Clock::now() >= deadline) return t.status().WithContext("group " + o_.name);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<std::string> Job::CheckpointAndExit() {
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o_.timeout * 1000));
  if (o_.transparent) {
    ASSIGN_OR_RETURN(std::string tree, DumpTree(/*leave_running=*/false));
    while (!child_->Poll() && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!child_->Poll()) return Timeout(o_.name + " was dumped to " + tree + " but did not end");
    return tree;
  }
  auto image = group() ? CheckpointGroup(deadline) : CheckpointProgram(deadline);
  if (!image.ok()) return image;
  // It exits after its image (status 75); give it until the deadline.
  while (!child_->Poll() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto st = child_->Poll();
  if (!st) return Timeout(o_.name + " wrote " + *image + " but did not exit");
  if (*st != kExitCheckpointed)
    return IoError(o_.name + " wrote " + *image + " and then ended with " +
                   platform::ChildProcess::Describe(*st));
  return image;
}

void Job::StopChild() {
  if (child_->Poll()) return;
  child_->Terminate();
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!child_->Poll() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!child_->Poll()) child_->Kill();
}

void Job::MarkJob() {
  if (job_id_.empty()) return;
  auto r = SlurmCommand(env_, {"scontrol", "update", "JobId=" + job_id_,
                               std::string("Comment=") + kJobMarker + SignalWord() + ":" + o_.dir});
  if (!r.ok()) Say("warning: `ckpt evacuate` will not know this job: " + r.status().message());
}

bool Job::Requeue() {
  bool slurm = !job_id_.empty();
  if (o_.requeue == "never" || (o_.requeue == "auto" && !slurm)) return false;
  if (!slurm) {
    Say("not requeued: --requeue always, but SLURM_JOB_ID is not set");
    return false;
  }
  // `ckpt rebalance` asks for a held requeue, so that it can place the job
  // before it runs again.
  std::string hold_file = platform::JoinPath(o_.dir, kHoldRequest);
  bool hold = env_->FileExists(hold_file);
  if (hold) env_->RemoveFile(hold_file).IgnoreError();
  if (auto r = SlurmCommand(env_, {"scontrol", hold ? "requeuehold" : "requeue", job_id_}); !r.ok()) {
    Say("error: " + r.status().message() + "; resubmit the job to resume it from " + o_.dir);
    Record({{"event", "requeue-failed"}, {"error", r.status().message()}});
    return false;
  }
  Say(std::string(hold ? "requeued and held job " : "requeued job ") + job_id_ +
      (hold ? " (`ckpt rebalance` places and releases it)" : ""));
  Record({{"event", "requeue"}, {"held", hold}});
  return true;
}

int Job::AfterCheckpoint(const std::string& image, double seconds, const std::string& why) {
  Say("checkpointed " + o_.name + " to " + image + " in " + SecondsText(seconds) + " (" + why + ")");
  Record(
      {{"event", "checkpoint"}, {"image", image}, {"seconds", seconds}, {"why", why}, {"lost_seconds", 0}});
  bool requeued = Requeue();
  if (!requeued && job_id_.empty()) Say("resume it with the same command: it continues from " + image);
  std::fflush(stderr);
  return o_.exit_code;
}

int Job::AfterFailedCheckpoint(const Status& st) {
  StopChild();  // never two copies writing the same directory
  std::string prev = NewestImage();
  // The work lost: since the earlier image was written, or this whole run.
  double now = static_cast<double>(env_->NowNanos()) / 1e9;
  double since = prev.empty() ? started_ : ImageTime(prev);
  Say("error: the checkpoint failed: " + st.message());
  Say(prev.empty()
          ? "there is no earlier image: the job starts over when it runs again"
          : "the job resumes from the earlier image " + prev + " when it runs again; the work since " +
                "then is lost" + (since > 0 ? " (" + SecondsText(now - since) + ")" : ""));
  nlohmann::ordered_json e = {{"event", "checkpoint-failed"}, {"error", st.message()}, {"previous", prev}};
  if (since > 0) e["lost_seconds"] = now - since;
  Record(e);
  Requeue();
  std::fflush(stderr);
  return kExitFailure;
}

int Job::Monitor() {
  int handled = 0;
  for (;;) {
    if (auto st = child_->Poll()) {
      if (*st == kExitCheckpointed &&
          !o_.transparent) {  // asked from outside (`ckpt checkpoint --exit`, evacuation)
        auto valid = NewestValidImage();
        std::string image = valid.ok() ? *valid : "";
        return AfterCheckpoint(image, 0, "the work stopped after a checkpoint");
      }
      Record({{"event", *st == 0 ? "finished" : "failed"}, {"status", *st}});
      if (*st != 0) Say(o_.name + " ended with " + platform::ChildProcess::Describe(*st) + "; not requeued");
      return *st == 0 ? kExitOk : (*st > 0 && *st < 256 ? *st : kExitFailure);
    }
    if (int sig = platform::TerminationRequest(); sig != 0) {
      std::string newest = NewestImage();
      Say("interrupted by " + platform::SignalName(sig) + " before a warning signal; stopping " + o_.name +
          (newest.empty() ? "" : " (its newest image: " + newest + ")"));
      StopChild();
      Record({{"event", "terminated"}, {"signal", platform::SignalName(sig)}});
      return 128 + sig;
    }
    if (platform::WarningSignalsCaught() > handled) {
      handled = platform::WarningSignalsCaught();
      auto t0 = Clock::now();
      auto image = CheckpointAndExit();
      if (!image.ok()) return AfterFailedCheckpoint(image.status());
      return AfterCheckpoint(*image, std::chrono::duration<double>(Clock::now() - t0).count(),
                             "warning signal SIG" + SignalWord());
    }
    if (o_.transparent && o_.every > 0 && Clock::now() >= next_dump_) {
      if (auto t = DumpTree(/*leave_running=*/true); !t.ok())
        Say("warning: periodic dump failed: " + t.status().message() + "; the previous image stays");
      next_dump_ = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o_.every * 1000));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int Job::Run() {
  started_ = static_cast<double>(env_->NowNanos()) / 1e9;
  if (Status st = Prepare(); !st.ok()) {
    std::fprintf(stderr, "ckpt: error: %s\n", st.message().c_str());
    return st.code() == Code::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  if (Status st = Start(); !st.ok()) return ReportError(st);
  return Monitor();
}

}  // namespace

void AddJob(CLI::App& app, Runner* run) {
  auto o = std::make_shared<JobOptions>();
  CLI::App* c = app.add_subcommand(
      "job",
      "Run a computation as a batch job that moves instead of starting over: ckpt job [options] -- PROGRAM "
      "ARGS. Resumes from the newest valid image in --dir; on the warning signal checkpoints, requeues the "
      "job (Slurm) and exits. In a job script: exec ckpt job ... (docs/schedulers.md)");
  c->add_option("command", o->command, "Program and arguments (after --)");
  c->add_option(
      "--dir", o->dir,
      "Image directory, on storage every node sees (default: ckpt-job-$SLURM_JOB_ID, else ckpt-job)");
  c->add_option("--name", o->name, "Image name (default: the program's file name)");
  c->add_option("--every", o->every, "Also checkpoint every S seconds (the work lost if a node dies)");
  c->add_option("--signal", o->signal,
                "The scheduler's warning signal (sbatch --signal=B:USR1@60; default USR1)");
  c->add_option("--exit-code", o->exit_code,
                "Exit status after checkpoint-and-exit (default 75; 85 for HTCondor's self-checkpointing)");
  c->add_option("--requeue", o->requeue,
                "auto: `scontrol requeue` after the checkpoint when under Slurm (default); always; never");
  c->add_option("--timeout", o->timeout, "Seconds the checkpoint may take (default 120)");
  auto* g = c->add_option_group("groups", "A dependent process group (docs/groups.md)");
  g->add_option("-n,--members", o->members, "Run the program as a group of N members");
  g->add_option("--spec", o->spec, "Group spec file: one member command per line");
  c->add_flag("--transparent", o->transparent,
              "An unmodified program: checkpoint its process tree with the engine (ckpt dump --tree) and "
              "resume it with ckpt restore");
  c->callback([run, o] { *run = [o] { return Job(platform::Env::Default(), *o).Run(); }; });
}

}  // namespace ckpt::cli
