// ckpt checkpoint PID [--exit] [--timeout S] [--json]: ask a running ckpt
// program to write a checkpoint at its next safepoint, and wait for it.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "group/protocol.h"
#include "lib/registration.h"
#include "platform/secure.h"

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

Result<nlohmann::json> ReadRegistration(platform::Env* env, std::int64_t pid) {
  std::string path = lib::Registration::PathFor(env, pid);
  auto data = platform::ReadFileToString(env, path);
  if (!data.ok()) {
    if (!env->ProcessAlive(pid)) return NotFound("no process " + std::to_string(pid) + " is running");
    return NotFound("process " + std::to_string(pid) + " is not a ckpt program (no registration " + path +
                    "; was it built with libckpt, and started without --ckpt-no-listen?)");
  }
  auto j = nlohmann::json::parse(*data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corruption("registration " + path + " is malformed");
  return j;
}

// A group: its coordinator's registration names a loopback port.
Result<nlohmann::json> FindGroup(platform::Env* env, const std::string& name) {
  auto list = env->ListDir(env->RuntimeDir());
  std::vector<std::string> seen;
  if (list.ok()) {
    for (const auto& e : *list) {
      if (e.name.size() < 6 || e.name.compare(e.name.size() - 5, 5, ".json") != 0) continue;
      auto data = platform::ReadFileToString(env, platform::JoinPath(env->RuntimeDir(), e.name));
      if (!data.ok()) continue;
      auto j = nlohmann::json::parse(*data, nullptr, false);
      if (j.is_discarded() || !j.is_object() || j.value("kind", std::string()) != "group") continue;
      if (!env->ProcessAlive(j.value("pid", std::int64_t{0}))) continue;
      if (j.value("group", std::string()) == name || j.value("id", std::string()) == name) return j;
      seen.push_back(j.value("group", std::string()));
    }
  }
  std::string known;
  for (const auto& s : seen) known += (known.empty() ? "" : ", ") + s;
  return NotFound("no running group named '" + name + "'" +
                  (known.empty() ? "" : " (running: " + known + ")"));
}

std::string FormatSeconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", s);
  return b;
}

int CheckpointGroup(const nlohmann::json& reg, bool exit, double timeout, bool json) {
  int port = reg.value("port", 0);
  std::string name = reg.value("group", std::string());
  auto sock = platform::ConnectLoopback(port);
  if (!sock.ok()) return ReportError(sock.status().WithContext("group " + name + "'s coordinator"));
  group::Channel ch(std::move(sock).value());
  // Proves this client belongs: the group's secret, from the owner-only registration.
  group::Auth auth;
  if (!platform::HexDecode(reg.value("secret", std::string()), &auth.secret))
    return ReportError(Corruption("group " + name + "'s registration holds a malformed secret"));
  Status st = ch.Send(group::Msg::kAuth, group::EncodeAuth(auth));
  if (st.ok())
    st = ch.Send(group::Msg::kClientCheckpoint, group::EncodeNote({0, static_cast<std::uint8_t>(exit), ""}));
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
  if (reply->type == group::Msg::kRefused) return ReportError(FailedPrecondition(n.text));
  if (n.flag != 1) return ReportError(IoError("group " + name + ": " + n.text));
  if (json) {
    nlohmann::ordered_json j = {{"group", name}, {"image", n.text}, {"exited", exit}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", n.text.c_str());
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

int Run(CheckpointOptions o) {
  platform::Env* env = platform::Env::Default();
  bool numeric = !o.target.empty() && o.target.find_first_not_of("0123456789") == std::string::npos;
  if (!numeric) {
    auto reg = FindGroup(env, o.target);
    if (!reg.ok()) return ReportError(reg.status());
    return CheckpointGroup(*reg, o.exit, o.timeout, o.json);
  }
  o.pid = std::stoll(o.target);
  const std::string reg_path = lib::Registration::PathFor(env, o.pid);
  auto reg = ReadRegistration(env, o.pid);
  if (!reg.ok()) return ReportError(reg.status());
  if (reg->value("kind", std::string()) == "group" && env->ProcessAlive(o.pid))
    return CheckpointGroup(*reg, o.exit, o.timeout, o.json);
  if (!env->ProcessAlive(o.pid) || reg->value("exited", false) || !SameProcess(env, o.pid, *reg)) {
    env->RemoveFile(reg_path).IgnoreError();  // stale
    return ReportError(NotFound("no ckpt program runs as process " + std::to_string(o.pid) +
                                " (its registration was stale and has been removed)"));
  }
  std::uint64_t gen0 = reg->value("generation", std::uint64_t{0});
  std::string err0 = reg->value("last_error", std::string());
  Status st = env->SendCheckpointRequest(
      o.pid, o.exit ? platform::Request::kCheckpointAndExit : platform::Request::kCheckpoint);
  if (!st.ok()) return ReportError(st);
  if (o.no_wait) {
    if (!o.json) std::printf("requested a checkpoint of process %lld\n", static_cast<long long>(o.pid));
    return kExitOk;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout);
  nlohmann::json last = *reg;
  bool gone = false;
  while (std::chrono::steady_clock::now() < deadline) {
    // Check liveness before reading, so a final publish is never missed.
    bool alive = env->ProcessAlive(o.pid);
    auto r = ReadRegistration(env, o.pid);
    if (r.ok()) last = *r;
    if (last.value("generation", std::uint64_t{0}) > gen0) break;
    std::string err = last.value("last_error", std::string());
    if (r.ok() && !err.empty() && err != err0) {
      return ReportError(IoError("process " + std::to_string(o.pid) + " failed to checkpoint: " + err +
                                 " (its previous image is intact)"));
    }
    if (!alive) {
      gone = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::uint64_t gen = last.value("generation", std::uint64_t{0});
  if (gen <= gen0) {
    if (gone) {
      return ReportError(
          IoError("process " + std::to_string(o.pid) + " exited without writing a checkpoint"));
    }
    return ReportError(Timeout("process " + std::to_string(o.pid) + " reached no safepoint within " +
                               FormatSeconds(o.timeout) + "; the request stays pending"));
  }
  std::string image = last.value("last_image", std::string());
  bool exited = false;
  if (o.exit) {
    for (int i = 0; i < 1000 && env->ProcessAlive(o.pid); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    exited = !env->ProcessAlive(o.pid);
    if (last.value("exited", false)) env->RemoveFile(reg_path).IgnoreError();
  }
  if (o.json) {
    nlohmann::ordered_json j = {{"pid", o.pid}, {"image", image}, {"generation", gen}, {"exited", exited}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", image.c_str());
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
