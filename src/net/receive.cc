// Receive(): hello and preflight, the image into the spool, then the kind's
// restore (receive_program.cc, receive_group.cc, or the engine through ReceiveConfig), held
// until the source commits.
#include "net/receive.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#ifdef _WIN32
#include <windows.h>
#else
#include <signal.h>
#include <unistd.h>
#endif

#include "image/codec.h"
#include "lib/resume_image.h"
#include "net/receive_internal.h"
#include "net/wire.h"
#include "platform/env.h"

namespace ckpt::net {

namespace fs = std::filesystem;

std::string DefaultSpool() {
  platform::Env* env = platform::Env::Default();
  std::string s = env->GetEnv("CKPT_SPOOL");
  if (!s.empty()) return s;
#ifdef _WIN32
  std::string base = env->GetEnv("LOCALAPPDATA");
  if (base.empty()) base = env->GetEnv("TEMP");
  return platform::JoinPath(platform::JoinPath(base, "ckpt"), "spool");
#else
  std::string base = env->GetEnv("XDG_STATE_HOME");
  if (base.empty() || base[0] != '/') {
    std::string home = env->GetEnv("HOME");
    base = (home.empty() ? std::string("/tmp") : home) + "/.local/state";
  }
  return base + "/ckpt/spool";
#endif
}

namespace internal {

Status Session::Fail(const Status& st) {
  if (!st.ok() && !reported) {
    reported = true;
    nlohmann::json e = {{"step", step}, {"message", st.message()}, {"host", host}};
    SendJson(s, FrameType::kError, e).IgnoreError();
    Log("failed at " + step + ": " + st.message());
  }
  return st;
}

void Session::Log(const std::string& m) const {
  if (cfg.log) cfg.log(m);
}

void Session::MaybeDie(const char* point) const {
  if (cfg.fault != point) return;
#ifdef _WIN32
  TerminateProcess(GetCurrentProcess(), 137);
#else
  ::kill(::getpid(), SIGKILL);
#endif
}

void Session::Released(bool record) {
  if (record) {
    Status st = RecordCommitted(cfg.spool, id);
    if (!st.ok()) Log("warning: " + st.message());
  }
  MaybeDie("die-after-release");
}

Status Session::AwaitCommit() {
  step = "waiting for the source to commit";
  auto f = RecvFrame(s, cfg.commit_timeout_s * 1000);
  if (!f.ok()) return f.status().WithContext("the source " + s->Describe() + " did not commit");
  if (f->type == FrameType::kError) {
    auto j = ParseJson(*f);
    reported = true;  // the source knows
    return FailedPrecondition("the source gave up: " +
                              (j.ok() ? j->value("message", std::string()) : std::string("?")));
  }
  if (f->type != FrameType::kCommit)
    return Corruption("expected COMMIT from the source, got " + FrameTypeName(f->type));
  return Status::Ok();
}

}  // namespace internal

namespace {

using internal::Session;

std::string Hex16() {
  return platform::RandomHex16();
}

bool SafeName(const std::string& n) {
  return !n.empty() && n.size() <= 128 && n != "." && n != ".." &&
         n.find_first_of("/\\:\0", 0, 4) == std::string::npos;
}

Status Preflight(Session* ss) {
  Session& s = *ss;
  s.step = "preflight";
  auto f = RecvFrame(s.s, 120 * 1000);
  if (!f.ok()) return f.status().WithContext("waiting for the source's HELLO");
  if (f->type != FrameType::kHello) return Corruption("expected HELLO, got " + FrameTypeName(f->type));
  ASSIGN_OR_RETURN(s.hello, ParseJson(*f));
  int version = s.hello.value("version", 0);
  if (version != kProtocolVersion) {
    return FailedPrecondition("the source speaks migration protocol " + std::to_string(version) +
                              ", this ckpt speaks " + std::to_string(kProtocolVersion));
  }
  s.kind = s.hello.value("kind", std::string());
  s.name = s.hello.value("name", std::string());
  s.id = s.hello.value("id", std::string());
  bool id_ok = s.id.size() == 16 && s.id.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (s.kind == "query") {
    // A source that lost our DONE asks whether migration ID was committed.
    if (!id_ok) return InvalidArgument("a query for a malformed migration id");
    std::string outcome = QueryOutcome(s.cfg.spool, s.id, 30 * 1000);
    s.Log("migration " + s.id + ": " + outcome + " (asked by the source)");
    s.query = true;
    return SendJson(s.s, FrameType::kAccept, {{"host", s.host}, {"outcome", outcome}});
  }
  if (!id_ok) s.id = Hex16();
  const auto& kinds = s.cfg.kinds;
  if (std::find(kinds.begin(), kinds.end(), s.kind) == kinds.end()) {
    return FailedPrecondition("this receiver does not take " +
                              (s.kind.empty() ? std::string("unnamed") : s.kind) + " migrations" +
                              (s.cfg.peer.empty() ? "" : " from " + s.cfg.peer));
  }
  if (s.kind == "process" && !s.cfg.restore_process)
    return NotSupported("this ckpt build has no transparent engine (Linux x86-64 only)");
  s.live = s.kind == "process" && s.hello.value("live", false);
  if (s.kind == "program") RETURN_IF_ERROR(internal::PreflightProgram(&s));
  if (s.kind == "process") RETURN_IF_ERROR(internal::PreflightProcess(&s));
  if (s.kind == "group") RETURN_IF_ERROR(internal::PreflightGroup(&s));
  // The spool: this migration's own directory, and room for the image.
  ASSIGN_OR_RETURN(s.entry, SpoolEntry::Create(s.cfg.spool, s.id));
  s.dir = s.entry->dir();
  std::error_code ec;
  std::uint64_t need = s.hello.value("image_bytes", std::uint64_t{0});
  auto sp = fs::space(s.dir, ec);
  if (!ec && need > 0 && sp.available < need) {
    return IoError("the spool " + s.cfg.spool + " on " + s.host + " has " +
                   std::to_string(sp.available >> 20) + " MiB free; the image needs about " +
                   std::to_string((need + (1 << 20) - 1) >> 20) + " MiB");
  }
  s.spool_free = ec ? 0 : sp.available;
  int rfd = -1, wfd = -1;
  nlohmann::json a = {{"host", s.host},
                      {"spool", s.dir},
                      {"free", ec ? 0 : sp.available},
                      {"codecs", image::AvailableCodecs()},
                      {"live", s.kind == "process"},
                      {"postcopy", s.kind == "process" && s.s->Fds(&rfd, &wfd)}};
  return SendJson(s.s, FrameType::kAccept, a);
}

// The spool file the image goes to: a temporary file named when whole, or
// (a program restored as it arrives) the image's own name from the start.
struct SpoolImage {
  std::unique_ptr<platform::TempFile> temp;
  std::unique_ptr<platform::WritableFile> direct;
  platform::WritableFile* file() {
    return temp ? static_cast<platform::WritableFile*>(temp.get()) : direct.get();
  }
};

Status ReceiveFrames(Session* ss, platform::WritableFile* out, std::uint64_t* got_out) {
  Session& s = *ss;
  std::uint64_t got = 0;
  Frame frame;  // one buffer for every frame
  Frame* f = &frame;
  while (true) {
    Status rs = RecvFrame(s.s, 300 * 1000, f);
    if (!rs.ok()) return rs.WithContext("after " + std::to_string(got) + " bytes of the image");
    if (f->type == FrameType::kData) {
      Status st = out->Append(f->payload.data(), f->payload.size());
      if (!st.ok()) return st.WithContext("writing the image to the spool on " + s.host);
      got += f->payload.size();
      RETURN_IF_ERROR(internal::StartWhileReceiving(&s, f->payload.data(), f->payload.size()));
      if (s.proc) {
        Status c = s.proc->Check();
        if (!c.ok()) {
          s.step = "restore";
          return c;
        }
      }
      continue;
    }
    if (f->type == FrameType::kError) {
      auto j = ParseJson(*f);
      s.reported = true;  // the source knows
      return FailedPrecondition("the source stopped the transfer: " +
                                (j.ok() ? j->value("message", std::string()) : std::string("?")));
    }
    if (f->type != FrameType::kEnd)
      return Corruption("unexpected " + FrameTypeName(f->type) + " in the image");
    ASSIGN_OR_RETURN(auto end, ParseJson(*f));
    std::uint64_t want = end.value("bytes", std::uint64_t{0});
    if (want != got) {
      return Corruption("the image is " + std::to_string(want) + " bytes at the source, " +
                        std::to_string(got) + " arrived");
    }
    *got_out = got;
    return Status::Ok();
  }
}

// A live migration's pre-copy rounds, each an image of its own into
// DIR/round-N, until the ROUND that announces the final image.
Status TakeRounds(Session* ss) {
  Session& s = *ss;
  platform::Env* env = platform::Env::Default();
  for (;;) {
    s.step = "pre-copy round " + std::to_string(s.rounds);
    auto f = RecvFrame(s.s, 300 * 1000);
    if (!f.ok()) return f.status().WithContext("waiting for the next round");
    if (f->type == FrameType::kError) {
      auto j = ParseJson(*f);
      s.reported = true;
      return FailedPrecondition("the source stopped the migration: " +
                                (j.ok() ? j->value("message", std::string()) : std::string("?")));
    }
    if (f->type != FrameType::kRound) return Corruption("expected ROUND, got " + FrameTypeName(f->type));
    ASSIGN_OR_RETURN(auto r, ParseJson(*f));
    if (r.value("round", -1) != s.rounds) return Corruption("rounds out of order");
    if (r.value("final", false)) return Status::Ok();
    std::string dir = platform::JoinPath(s.dir, "round-" + std::to_string(s.rounds));
    RETURN_IF_ERROR(env->CreateDirs(dir));
    ASSIGN_OR_RETURN(auto temp, env->NewTempFile(dir, "process.ckpt"));
    std::uint64_t got = 0;
    RETURN_IF_ERROR(ReceiveFrames(&s, temp.get(), &got));
    auto done = temp->Commit(platform::JoinPath(dir, "process.ckpt"), false);
    if (!done.ok() || !*done) return IoError("cannot name round " + std::to_string(s.rounds) + " in " + dir);
    s.Log("pre-copy round " + std::to_string(s.rounds) + ": " + std::to_string(got) + " bytes");
    ++s.rounds;
  }
}

Status TakeImage(Session* ss) {
  Session& s = *ss;
  if (s.live) RETURN_IF_ERROR(TakeRounds(&s));
  s.step = "transfer";
  platform::Env* env = platform::Env::Default();
  std::string file =
      s.kind == "process" ? "process.ckpt" : s.hello.value("image_name", std::string("image.ckpt"));
  if (!SafeName(file)) return InvalidArgument("the source named its image '" + file + "'");
  s.follow = internal::FollowWanted(s);
  SpoolImage out;
  if (s.follow) {
    s.image = platform::JoinPath(s.dir, file);
    ASSIGN_OR_RETURN(out.direct, env->NewWritableFile(s.image));
    if (s.kind == "process") RETURN_IF_ERROR(internal::StartProcessRestore(&s));
  } else {
    ASSIGN_OR_RETURN(out.temp, env->NewTempFile(s.dir, file));
  }
  std::uint64_t got = 0;
  auto t0 = std::chrono::steady_clock::now();
  Status st = ReceiveFrames(&s, out.file(), &got);
  // Not synced: the image matters only to this migration's restore, and a
  // target that crashes before COMMIT leaves the source running. A kept
  // image (--keep) is synced.
  const std::string where = "writing the image to the spool on " + s.host;
  if (st.ok() && s.cfg.keep) st = out.file()->Sync().WithContext(where);
  if (out.direct) {
    // Nothing more is written, whatever happened: what reads the image as
    // it comes (a program, a process restore) learns that it is whole, or
    // finds it cut short and gives up.
    Status done = out.direct->Close();
    if (done.ok()) done = platform::WriteFileAtomic(env, lib::CompleteMarker(s.image), "", false);
    if (st.ok()) st = done.WithContext(where);
  } else if (st.ok()) {
    s.image = platform::JoinPath(s.dir, file);
    auto done = out.temp->Commit(s.image, false);
    st = done.ok() ? (*done ? Status::Ok() : IoError(s.image + " exists already")) : done.status();
    st = st.WithContext(where);
  }
  RETURN_IF_ERROR(st);
  s.image_bytes = got;
  s.arrived = std::chrono::steady_clock::now();
  s.transfer_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(s.arrived - t0).count();
  s.Log("received " + std::to_string(got) + " bytes into " + s.image);
  return Status::Ok();
}

}  // namespace

Status Receive(Stream* stream, const ReceiveConfig& cfg) {
  Session s(stream, cfg);
  s.host = platform::Env::Default()->HostName();
  Status st = Preflight(&s);
  if (st.ok() && s.query) return st;
  if (st.ok()) st = TakeImage(&s);
  if (st.ok()) {
    st = s.kind == "process" ? internal::RestoreProcess(&s)
         : s.kind == "group" ? internal::RunGroup(&s)
                             : internal::RunProgram(&s);
  }
  if (!st.ok()) s.Fail(st).IgnoreError();
  // A copy started on the image ends (a restore still held is undone)
  // before its spool entry goes.
  if (!st.ok()) s.held.reset();
  s.proc.reset();
  if (s.entry && st.ok() && cfg.keep) s.entry->Keep();
  s.entry.reset();
  if (st.ok()) s.Log("migration " + s.id + " of " + s.name + " done");
  return st.ok() ? st : st.WithContext(s.step);
}

}  // namespace ckpt::net
