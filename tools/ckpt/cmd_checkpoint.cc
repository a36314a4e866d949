// ckpt checkpoint PID [--exit] [--timeout S] [--json]: ask a running ckpt
// program to write a checkpoint at its next safepoint, and wait for it.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "group/protocol.h"
#include "image/reader.h"
#include "lib/program_image.h"
#include "lib/registration.h"

namespace ckpt::cli {

namespace {

struct CheckpointOptions {
  std::string target;
  std::int64_t pid = 0;
  bool exit = false;
  double timeout = 60;
  bool json = false;
  bool no_wait = false;
};

struct Found {
  nlohmann::json reg;
  std::string path;
};

// The runtime directories this user's programs may register in, each
// checked (this user's, private, not a link); `refused` collects why any was
// skipped. Registrations of processes that are gone are collected on the way.
std::vector<std::string> UsableRuntimeDirs(platform::Env* env, std::string* refused) {
  std::vector<std::string> out;
  for (const auto& d : env->RuntimeDirs()) {
    Status st = env->SecureRuntimeDir(d, /*create=*/false);
    if (st.code() == Code::kNotFound) continue;
    if (!st.ok()) {
      *refused += (refused->empty() ? "" : "; ") + st.message();
      continue;
    }
    lib::CollectStaleRegistrations(env, d, -1);
    out.push_back(d);
  }
  return out;
}

Result<nlohmann::json> ParseRegistration(const std::string& path, const std::string& data) {
  auto j = nlohmann::json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corruption("registration " + path + " is malformed");
  return j;
}

// Process `pid`'s registration, from the first runtime directory that has one.
Result<Found> ReadRegistration(platform::Env* env, const std::vector<std::string>& dirs, std::int64_t pid,
                               const std::string& refused) {
  for (const auto& d : dirs) {
    std::string path = lib::RegistrationPath(d, pid);
    auto data = env->ReadPrivateFile(path, lib::Registration::kMaxFileSize);
    if (data.status().code() == Code::kNotFound) continue;
    if (!data.ok())
      return IoError("registration of process " + std::to_string(pid) + ": " + data.status().message());
    ASSIGN_OR_RETURN(auto j, ParseRegistration(path, *data));
    return Found{std::move(j), path};
  }
  if (!env->ProcessAlive(pid)) return NotFound("no process " + std::to_string(pid) + " is running");
  std::string where;
  for (const auto& d : env->RuntimeDirs())
    where += (where.empty() ? "" : " or ") + lib::RegistrationPath(d, pid);
  return NotFound("process " + std::to_string(pid) + " is not a ckpt program (no registration " + where +
                  "; was it built with libckpt, and started without --ckpt-no-listen?)" +
                  (refused.empty() ? "" : " (" + refused + ")"));
}

// A group: its coordinator's registration names a loopback port.
Result<nlohmann::json> FindGroup(platform::Env* env, const std::vector<std::string>& dirs,
                                 const std::string& name, const std::string& refused) {
  std::vector<std::string> seen;
  for (const auto& dir : dirs) {
    auto list = env->ListDir(dir);
    if (!list.ok()) continue;
    for (const auto& e : *list) {
      if (e.name.size() < 6 || e.name.compare(e.name.size() - 5, 5, ".json") != 0) continue;
      std::string path = platform::JoinPath(dir, e.name);
      auto data = env->ReadPrivateFile(path, lib::Registration::kMaxFileSize);
      if (!data.ok()) continue;
      auto j = ParseRegistration(path, *data);
      if (!j.ok() || j->value("kind", std::string()) != "group") continue;
      if (!env->ProcessAlive(j->value("pid", std::int64_t{0}))) continue;
      if (JsonBytesValue(*j, "group") == name || j->value("id", std::string()) == name) return *j;
      seen.push_back(JsonBytesValue(*j, "group"));
    }
  }
  std::string known;
  for (const auto& s : seen) known += (known.empty() ? "" : ", ") + s;
  return NotFound("no running group named '" + name + "'" +
                  (known.empty() ? "" : " (running: " + known + ")") +
                  (refused.empty() ? "" : " (" + refused + ")"));
}

std::string FormatSeconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", s);
  return b;
}

int CheckpointGroup(const nlohmann::json& reg, bool exit, double timeout, bool json) {
  int port = reg.value("port", 0);
  std::string name = JsonBytesValue(reg, "group");
  auto sock = platform::ConnectLoopback(port);
  if (!sock.ok()) return ReportError(sock.status().WithContext("group " + name + "'s coordinator"));
  group::Channel ch(std::move(sock).value());
  Status st =
      ch.Send(group::Msg::kClientCheckpoint, group::EncodeNote({0, static_cast<std::uint8_t>(exit), ""}));
  if (!st.ok()) return ReportError(st);
  // The coordinator enforces the members' own timeout; this one bounds how
  // long the command waits for its answer.
  st = ch.WaitReadable(timeout <= 0 ? -1 : static_cast<int>(timeout * 1000));
  if (st.code() == Code::kTimeout) {
    return ReportError(Timeout("group " + name + " did not answer within " + FormatSeconds(timeout) +
                               "; the checkpoint may still complete (see `ckpt inspect` of the group's "
                               "image directory)"));
  }
  if (!st.ok()) return ReportError(st.WithContext("group " + name + "'s coordinator"));
  auto reply = ch.Recv();
  if (!reply.ok()) return ReportError(IoError("group " + name + "'s coordinator ended before answering"));
  group::Note n;
  if (!group::DecodeNote(reply->payload, &n).ok())
    return ReportError(Corruption("malformed reply from the coordinator"));
  if (n.flag != 1) return ReportError(IoError("group " + name + ": " + n.text));
  if (json) {
    nlohmann::ordered_json j = {{"group", name}, {"image", n.text}, {"exited", exit}};
    PrintJson(j);
  } else {
    std::printf("%s\n", Printable(n.text).c_str());
  }
  return kExitOk;
}

// True if the registration belongs to the process now running as `pid`
// (and not to an earlier process whose PID was reused).
bool SameProcess(platform::Env* env, std::int64_t pid, const nlohmann::json& reg) {
  std::uint64_t want = reg.value("start_time", std::uint64_t{0});
  if (want == 0) return true;
  return env->ProcessStartTime(pid) == want;
}

std::uint64_t SeqOf(const std::string& image) {
  std::string name;
  std::uint64_t seq = 0;
  if (image.empty() || !lib::ParseImageFileName(platform::BaseName(image), &name, &seq)) return 0;
  return seq;
}

// The image process `pid` wrote after checkpoint `after_seq`, found in the
// directory its registration names by the producer recorded in each image.
// How a requester learns the outcome when the program has ended and its
// registration is already gone (another requester, or a starting program,
// removed it): the image itself is the record.
std::string ImageWrittenBy(platform::Env* env, const nlohmann::json& reg, std::int64_t pid,
                           std::uint64_t after_seq) {
  std::string dir = JsonBytesValue(reg, "dir"), name = JsonBytesValue(reg, "program");
  if (dir.empty() || name.empty()) return "";
  auto list = lib::ListImages(env, dir, name);
  if (!list.ok()) return "";
  int looked = 0;
  for (const auto& p : *list) {
    std::string n;
    std::uint64_t seq = 0;
    // Newest first, this program's images before others'.
    if (!lib::ParseImageFileName(platform::BaseName(p), &n, &seq) || n != name) break;
    if (seq <= after_seq || ++looked > 16) break;
    auto src = env->NewRandomAccessFile(p);
    if (!src.ok()) continue;
    auto r = image::ImageReader::Open(std::move(src).value());
    if (!r.ok()) continue;
    const image::SectionInfo* ms = (*r)->Find(lib::kSectionMeta);
    auto md = ms != nullptr ? (*r)->ReadSection(*ms) : Result<std::string>(NotFound("no META"));
    lib::Meta m;
    if (!md.ok() || !lib::DecodeMeta(*md, &m).ok()) continue;
    if (m.Get("producer.pid") == std::to_string(pid) && m.Get("producer.host") == env->HostName()) return p;
  }
  return "";
}

struct Outcome {
  std::string image;
  std::uint64_t generation = 0;
  bool exited = false;
};

// Waits for the requested checkpoint: a new generation in the registration,
// a new failure (counted, so a failure like the previous one is seen too),
// or the end of the process.
Result<Outcome> WaitForCheckpoint(platform::Env* env, const CheckpointOptions& o, const Found& start) {
  const std::uint64_t gen0 = start.reg.value("generation", std::uint64_t{0});
  const std::uint64_t fail0 = start.reg.value("failures", std::uint64_t{0});
  const std::string err0 = JsonBytesValue(start.reg, "last_error");
  const std::string who = "process " + std::to_string(o.pid);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout);
  nlohmann::json last = start.reg;
  bool gone = false;
  while (std::chrono::steady_clock::now() < deadline) {
    // Check liveness before reading, so a final publish is never missed.
    bool alive = env->ProcessAlive(o.pid);
    auto data = env->ReadPrivateFile(start.path, lib::Registration::kMaxFileSize);
    auto r = data.ok() ? ParseRegistration(start.path, *data) : Result<nlohmann::json>(data.status());
    if (r.ok()) last = *r;
    if (last.value("generation", std::uint64_t{0}) > gen0) break;
    std::string err = JsonBytesValue(last, "last_error");
    bool failed = last.contains("failures") ? last.value("failures", std::uint64_t{0}) > fail0
                                            : !err.empty() && err != err0;
    if (r.ok() && failed)
      return IoError(who + " failed to checkpoint: " + err + " (its previous image is intact)");
    if (!alive) {
      gone = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Outcome out;
  out.generation = last.value("generation", std::uint64_t{0});
  if (out.generation > gen0) {
    out.image = JsonBytesValue(last, "last_image");
  } else if (gone) {
    out.image = ImageWrittenBy(env, start.reg, o.pid, SeqOf(JsonBytesValue(start.reg, "last_image")));
    if (out.image.empty()) return IoError(who + " exited without writing a checkpoint");
    out.generation = gen0 + 1;
  } else {
    return Timeout(who + " reached no safepoint within " + FormatSeconds(o.timeout) +
                   "; the request stays pending");
  }
  if (o.exit || gone || last.value("exited", false)) {
    for (int i = 0; i < 1000 && env->ProcessAlive(o.pid); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    out.exited = !env->ProcessAlive(o.pid);
    // The program left its registration for its requesters; collect it.
    if (out.exited && last.value("exited", false)) env->RemoveFile(start.path).IgnoreError();
  }
  return out;
}

int Run(CheckpointOptions o) {
  platform::Env* env = platform::Env::Default();
  std::string refused;
  const std::vector<std::string> dirs = UsableRuntimeDirs(env, &refused);
  bool numeric = !o.target.empty() && o.target.find_first_not_of("0123456789") == std::string::npos;
  if (!numeric) {
    auto reg = FindGroup(env, dirs, o.target, refused);
    if (!reg.ok()) return ReportError(reg.status());
    return CheckpointGroup(*reg, o.exit, o.timeout, o.json);
  }
  o.pid = std::stoll(o.target);
  auto found = ReadRegistration(env, dirs, o.pid, refused);
  if (!found.ok()) return ReportError(found.status());
  const nlohmann::json& reg = found->reg;
  if (reg.value("kind", std::string()) == "group" && env->ProcessAlive(o.pid))
    return CheckpointGroup(reg, o.exit, o.timeout, o.json);
  if (!env->ProcessAlive(o.pid) || reg.value("exited", false) || !SameProcess(env, o.pid, reg)) {
    env->RemoveFile(found->path).IgnoreError();  // stale
    return ReportError(NotFound("no ckpt program runs as process " + std::to_string(o.pid) +
                                " (its registration was stale and has been removed)"));
  }
  Status st = env->SendCheckpointRequest(
      o.pid, o.exit ? platform::Request::kCheckpointAndExit : platform::Request::kCheckpoint);
  if (!st.ok()) return ReportError(st);
  if (o.no_wait) {
    if (!o.json) std::printf("requested a checkpoint of process %lld\n", static_cast<long long>(o.pid));
    return kExitOk;
  }
  auto out = WaitForCheckpoint(env, o, *found);
  if (!out.ok()) return ReportError(out.status());
  if (o.json) {
    nlohmann::ordered_json j = {
        {"pid", o.pid}, {"image", out->image}, {"generation", out->generation}, {"exited", out->exited}};
    PrintJson(j);
  } else {
    std::printf("%s\n", Printable(out->image).c_str());
  }
  return kExitOk;
}

}  // namespace

void AddCheckpoint(CLI::App& app, Runner* run) {
  auto o = std::make_shared<CheckpointOptions>();
  CLI::App* c = app.add_subcommand(
      "checkpoint",
      "Ask a running ckpt program, or a dependent process group, to checkpoint; print the image path");
  c->add_option("target", o->target,
                "Process id of a ckpt program, or a group: its name, id, or its coordinator's process id")
      ->required();
  c->add_flag("--exit", o->exit, "Stop the program after the checkpoint (it exits with status 75)");
  c->add_option("--timeout", o->timeout, "Seconds to wait for the checkpoint (default 60)");
  c->add_flag("--no-wait", o->no_wait, "Send the request and return at once");
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
