#include "lib/control.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "image/reader.h"
#include "lib/hold.h"
#include "lib/program_image.h"
#include "platform/socket.h"

namespace ckpt::lib {

namespace {

// True if the registration belongs to the process now running as `pid`
// (and not to an earlier process whose PID was reused).
bool SameProcess(platform::Env* env, std::int64_t pid, const RegistrationRecord& reg) {
  if (reg.start_time == 0) return true;
  return SameStartTime(reg.start_time, env->ProcessStartTime(pid));
}

std::uint64_t SeqOf(const std::string& image) {
  std::string name;
  std::uint64_t seq = 0;
  if (image.empty() || !ParseImageFileName(platform::BaseName(image), &name, &seq)) return 0;
  return seq;
}

// The image process `pid` wrote after checkpoint `after_seq`, found in the
// directory its registration names by the producer recorded in each image.
// How a requester learns the outcome when the program has ended and its
// registration is already gone (another requester, or a starting program,
// removed it): the image itself is the record.
std::string ImageWrittenBy(platform::Env* env, const RegistrationRecord& reg, std::int64_t pid,
                           std::uint64_t after_seq) {
  const std::string &dir = reg.dir, &name = reg.program;
  if (dir.empty() || name.empty()) return "";
  auto list = ListImages(env, dir, name);
  if (!list.ok()) return "";
  int looked = 0;
  for (const auto& p : *list) {
    std::string n;
    std::uint64_t seq = 0;
    // Newest first, this program's images before others'.
    if (!ParseImageFileName(platform::BaseName(p), &n, &seq) || n != name) break;
    if (seq <= after_seq || ++looked > 16) break;
    auto src = env->NewRandomAccessFile(p);
    if (!src.ok()) continue;
    auto r = image::ImageReader::Open(std::move(src).value());
    if (!r.ok()) continue;
    const image::SectionInfo* ms = (*r)->Find(kSectionMeta);
    auto md = ms != nullptr ? (*r)->ReadSection(*ms) : Result<std::string>(NotFound("no META"));
    Meta m;
    if (!md.ok() || !DecodeMeta(*md, &m).ok()) continue;
    if (m.Get("producer.pid") == std::to_string(pid) && m.Get("producer.host") == env->HostName()) return p;
  }
  return "";
}

// The registration as it is now (`last` when it cannot be read).
RegistrationRecord ReadAgain(platform::Env* env, const ProgramTarget& t, const RegistrationRecord& last,
                             bool* read) {
  auto r = ReadRegistrationFile(env, t.reg_path);
  *read = r.ok();
  return r.ok() ? *r : last;
}

}  // namespace

bool WaitGone(platform::Env* env, std::int64_t pid, double timeout) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (env->ProcessAlive(pid)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string FormatSeconds(double s) {
  char b[32];
  (void)std::snprintf(b, sizeof b, "%g s", s);
  return b;
}

std::vector<std::string> UsableRuntimeDirs(platform::Env* env, std::string* refused) {
  std::vector<std::string> out;
  for (const auto& d : env->RuntimeDirs()) {
    Status st = env->SecureRuntimeDir(d, /*create=*/false);
    if (st.code() == Code::kNotFound) continue;
    if (!st.ok()) {
      *refused += (refused->empty() ? "" : "; ") + st.message();
      continue;
    }
    CollectStaleRegistrations(env, d, -1);
    out.push_back(d);
  }
  return out;
}

Result<ProgramTarget> ReadRegistration(platform::Env* env, const std::vector<std::string>& dirs,
                                       std::int64_t pid, const std::string& refused) {
  for (const auto& d : dirs) {
    std::string path = RegistrationPath(d, pid);
    auto data = env->ReadPrivateFile(path, Registration::kMaxFileSize);
    if (data.status().code() == Code::kNotFound) continue;
    if (!data.ok())
      return IoError("registration of process " + std::to_string(pid) + ": " + data.status().message());
    ASSIGN_OR_RETURN(auto reg, DecodeRegistration(path, *data));
    return ProgramTarget{pid, std::move(reg), path};
  }
  if (!env->ProcessAlive(pid)) return NotFound("no process " + std::to_string(pid) + " is running");
  std::string where;
  for (const auto& d : env->RuntimeDirs()) where += (where.empty() ? "" : " or ") + RegistrationPath(d, pid);
  return NotFound("process " + std::to_string(pid) + " is not a ckpt program (no registration " + where +
                  "; was it built with libckpt, and started without --ckpt-no-listen?)" +
                  (refused.empty() ? "" : " (" + refused + ")"));
}

Result<ProgramTarget> CheckProgram(platform::Env* env, Result<ProgramTarget> found) {
  if (!found.ok()) return found.status();
  const std::int64_t pid = found->pid;
  const RegistrationRecord& reg = found->reg;
  if (!env->ProcessAlive(pid) || reg.exited || !SameProcess(env, pid, reg)) {
    env->RemoveFile(found->reg_path).IgnoreError();  // stale
    return NotFound("no ckpt program runs as process " + std::to_string(pid) +
                    " (its registration was stale and has been removed)");
  }
  if (reg.is_group()) {
    return FailedPrecondition("process " + std::to_string(pid) + " is the coordinator of group '" +
                              reg.group +
                              "', not a program: a group is checkpointed as a whole (ckpt checkpoint GROUP)");
  }
  return found;
}

Result<ProgramTarget> FindProgram(platform::Env* env, std::int64_t pid) {
  std::string refused;
  const std::vector<std::string> dirs = UsableRuntimeDirs(env, &refused);
  return CheckProgram(env, ReadRegistration(env, dirs, pid, refused));
}

std::vector<ProgramTarget> ListRunning(platform::Env* env, const std::vector<std::string>& dirs) {
  std::vector<ProgramTarget> out;
  for (const std::string& d : dirs) {
    auto list = env->ListDir(d);
    if (!list.ok()) continue;
    for (const auto& f : *list) {
      std::int64_t pid = 0;
      if (f.is_dir || !ParseRegistrationName(f.name, &pid)) continue;
      if (std::any_of(out.begin(), out.end(), [&](const ProgramTarget& t) { return t.pid == pid; })) continue;
      const std::string path = platform::JoinPath(d, f.name);
      auto reg = ReadRegistrationFile(env, path);
      if (!reg.ok() || !WrittenOnThisOs(*reg)) continue;
      ProgramTarget t{pid, std::move(reg).value(), path};
      if (t.reg.is_group() ? !env->ProcessAlive(pid) : !CheckProgram(env, t).ok()) continue;
      out.push_back(std::move(t));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pid < b.pid; });
  return out;
}

Status RequestCheckpoint(platform::Env* env, const ProgramTarget& t, bool exit) {
  return env->SendCheckpointRequest(
      t.pid, exit ? platform::Request::kCheckpointAndExit : platform::Request::kCheckpoint);
}

namespace {

// True if registration `now` records a checkpoint failure after `before`
// (older libraries publish no "failures": a new last_error then).
bool FailedSince(const RegistrationRecord& now, const RegistrationRecord& before) {
  if (now.has_failures) return now.failures > before.failures;
  return !now.last_error.empty() && now.last_error != before.last_error;
}

}  // namespace

Result<Outcome> WaitForCheckpoint(platform::Env* env, const ProgramTarget& t, bool exit, double timeout) {
  const std::uint64_t gen0 = t.reg.generation;
  const std::string who = "process " + std::to_string(t.pid);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  RegistrationRecord last = t.reg;
  bool gone = false;
  while (std::chrono::steady_clock::now() < deadline) {
    // Check liveness before reading, so a final publish is never missed.
    bool alive = env->ProcessAlive(t.pid);
    bool read = false;
    last = ReadAgain(env, t, last, &read);
    if (last.generation > gen0) break;
    if (read && FailedSince(last, t.reg)) {
      return IoError(who + " failed to checkpoint: " + last.last_error + " (its previous image is intact)");
    }
    if (!alive) {
      gone = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Outcome out;
  out.generation = last.generation;
  out.held = last.held;
  if (out.generation > gen0) {
    out.image = last.last_image;
  } else if (gone) {
    out.image = ImageWrittenBy(env, t.reg, t.pid, SeqOf(t.reg.last_image));
    if (out.image.empty()) return IoError(who + " exited without writing a checkpoint");
    out.generation = gen0 + 1;
  } else {
    return Timeout(who + " reached no safepoint within " + FormatSeconds(timeout) +
                   "; the request stays pending");
  }
  if (exit || gone || last.exited) {
    out.exited = WaitGone(env, t.pid, 10);
    out.held = false;
    // The program left its registration for its requesters; collect it.
    if (out.exited && last.exited) env->RemoveFile(t.reg_path).IgnoreError();
  }
  return out;
}

Result<Outcome> Checkpoint(platform::Env* env, const ProgramTarget& t, bool exit, double timeout) {
  RETURN_IF_ERROR(RequestCheckpoint(env, t, exit));
  return WaitForCheckpoint(env, t, exit, timeout);
}

namespace {

// After a hold request: the checkpoint's outcome, the program held.
Result<HeldImage> AwaitHold(platform::Env* env, const ProgramTarget& t, double timeout) {
  const std::string who = "process " + std::to_string(t.pid);
  auto out = WaitForCheckpoint(env, t, /*exit=*/false, timeout);
  if (out.status().code() == Code::kTimeout) {
    // Cancel: a release after the hold request makes the program continue
    // as soon as it gets there.
    env->SendCheckpointRequest(t.pid, platform::Request::kRelease).IgnoreError();
    return Timeout(who + " reached no safepoint within " + FormatSeconds(timeout) +
                   "; the hold was cancelled (the program will checkpoint and continue when it gets there)");
  }
  if (!out.ok()) return out.status();
  if (out->exited || !out->held) {
    // Served by another requester's checkpoint: do not let the hold follow later.
    if (!out->exited) env->SendCheckpointRequest(t.pid, platform::Request::kRelease).IgnoreError();
    return FailedPrecondition(who + (out->exited ? " exited" : " continued") + " after writing " +
                              out->image + " instead of holding (another requester's " +
                              (out->exited ? "--exit" : "decision") + " was served with it)");
  }
  HeldImage h;
  h.image = out->image;
  h.generation = out->generation;
  bool read = false;
  RegistrationRecord now = ReadAgain(env, t, t.reg, &read);
  h.program = now.program;
  h.cwd = now.cwd;
  return h;
}

// True once the registration shows the checkpoint asked of `t` done or
// failed, or the process is gone: nobody will connect any more.
bool HoldAnswered(platform::Env* env, const ProgramTarget& t) {
  if (!env->ProcessAlive(t.pid)) return true;
  bool read = false;
  RegistrationRecord now = ReadAgain(env, t, t.reg, &read);
  return read && (now.generation > t.reg.generation || FailedSince(now, t.reg));
}

// Waits until `deadline` for the program's connection to the stream port;
// nullptr when it answered otherwise (a file, a failure, its end) or the
// time ran out.
std::unique_ptr<platform::Socket> AwaitStream(platform::Env* env, const ProgramTarget& t,
                                              platform::Listener* l, const std::string& token,
                                              std::chrono::steady_clock::time_point deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
    auto a = l->Accept(20);
    if (a.ok()) {
      auto pid = ReadReportLine(a->get(), "CKPTSTREAM", token, 10 * 1000);
      if (pid.ok() && *pid == t.pid) return std::move(a).value();
      continue;  // not the program: ignored
    }
    if (HoldAnswered(env, t)) return nullptr;
  }
  return nullptr;
}

}  // namespace

Result<HeldImage> CheckpointAndHold(platform::Env* env, const ProgramTarget& t, double timeout) {
  RETURN_IF_ERROR(env->SendCheckpointRequest(t.pid, platform::Request::kCheckpointAndHold));
  return AwaitHold(env, t, timeout);
}

Result<HeldImage> StreamAndHold(platform::Env* env, const ProgramTarget& t, double timeout,
                                const std::function<Status(platform::Socket*)>& pump) {
  ASSIGN_OR_RETURN(auto listener, platform::Listener::Loopback());
  StreamTicket ticket;
  ticket.port = listener->port();
  ticket.token = platform::RandomHex16() + platform::RandomHex16();
  ticket.requester = env->ProcessId();
  const std::string ticket_path = StreamTicketPath(t.reg_path);
  RETURN_IF_ERROR(platform::WriteFileAtomic(env, ticket_path, EncodeStreamTicket(ticket), false)
                      .WithContext("the stream ticket"));
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout));
  Status asked = env->SendCheckpointRequest(t.pid, platform::Request::kCheckpointAndHold);
  auto sock = asked.ok() ? AwaitStream(env, t, listener.get(), ticket.token, deadline) : nullptr;
  env->RemoveFile(ticket_path).IgnoreError();  // the program took it, or it is of no use now
  if (!asked.ok()) return asked;
  if (!sock) {
    // A file instead, a failure, its end — or the time ran out: what is left of it.
    double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    return AwaitHold(env, t, std::max(left, 0.05));
  }
  Status pumped = pump(sock.get());
  // Closed: a program still writing sees its checkpoint fail and runs on.
  sock.reset();
  auto held = AwaitHold(env, t, timeout);
  if (!pumped.ok()) {
    if (held.ok()) {
      Status rel = ReleaseHeld(env, t, /*exit=*/false, timeout);
      if (!rel.ok())
        return Status(pumped.code(),
                      pumped.message() + "; and releasing the program failed: " + rel.message());
    }
    return pumped;
  }
  if (held.ok()) held->image.clear();  // it went into the stream
  return held;
}

Status ReleaseHeld(platform::Env* env, const ProgramTarget& t, bool exit, double timeout) {
  const std::string who = "process " + std::to_string(t.pid);
  bool read = false;
  RegistrationRecord reg = ReadAgain(env, t, t.reg, &read);
  if (!env->ProcessAlive(t.pid)) return NotFound("no process " + std::to_string(t.pid) + " is running");
  if (!read) return NotFound(who + " has no registration any more (" + t.reg_path + ")");
  if (!reg.held)
    return FailedPrecondition(who + " is not held (it runs on: no checkpoint-and-hold waits for a decision)");
  RETURN_IF_ERROR(env->SendCheckpointRequest(
      t.pid, exit ? platform::Request::kReleaseAndExit : platform::Request::kRelease));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (std::chrono::steady_clock::now() < deadline) {
    bool alive = env->ProcessAlive(t.pid);
    reg = ReadAgain(env, t, reg, &read);
    if (!alive) {
      if (!exit) return IoError(who + " ended instead of continuing");
      // It left its registration (marked exited) for us; collect it.
      env->RemoveFile(t.reg_path).IgnoreError();
      if (!reg.exited) return IoError(who + " ended, but not through the exit asked for");
      return Status::Ok();
    }
    if (read && !reg.held) {
      if (!exit) return Status::Ok();
      if (!reg.exited)
        return FailedPrecondition(who +
                                  " released itself before the decision and continues; it did not exit");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Timeout(who + (exit ? " did not exit" : " did not confirm that it continues") + " within " +
                 FormatSeconds(timeout));
}

}  // namespace ckpt::lib
