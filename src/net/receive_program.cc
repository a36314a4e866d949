// Receiving a CKPT program: the program runs here from the received image
// (CKPT_RESUME), with its output in files, and waits at its first safepoint
// on a loopback connection until the source commits ('g'); if this side
// goes away first, the program ends (status 76) without running on.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "image/reader.h"
#include "lib/hold.h"
#include "lib/program_image.h"
#include "lib/resume_image.h"
#include "net/receive_internal.h"
#include "net/wire.h"
#include "platform/env.h"
#include "platform/process.h"
#include "platform/socket.h"

namespace ckpt::net::internal {

namespace fs = std::filesystem;

bool IsDir(const std::string& p) {
  return !p.empty() && platform::Env::Default()->IsDirectory(p);
}

namespace {

// The program's recorded arguments, from the image's META.
Result<std::vector<std::string>> ArgsFromMeta(image::ImageReader* r, const std::string& image) {
  if (r->header().kind != image::ImageKind::kProgram)
    return InvalidArgument(std::string("the source sent a ") + image::ImageKindName(r->header().kind) +
                           " image as a program");
  ASSIGN_OR_RETURN(const image::SectionInfo* ms, r->Seek(lib::kSectionMeta));
  if (ms == nullptr) return Corruption(image + " has no META section");
  ASSIGN_OR_RETURN(auto data, r->ReadSection(*ms));
  lib::Meta meta;
  RETURN_IF_ERROR(lib::DecodeMeta(data, &meta));
  return lib::ProgramArgs(meta);
}

Result<std::vector<std::string>> RecordedArgs(const std::string& image) {
  platform::Env* env = platform::Env::Default();
  ASSIGN_OR_RETURN(auto src, env->NewRandomAccessFile(image));
  ASSIGN_OR_RETURN(auto r, image::ImageReader::Open(std::move(src)));
  return ArgsFromMeta(r.get(), image);
}

// The first bytes of an image that is still arriving: a read past them is
// OutOfRange ("not yet"), told apart from damage.
class PrefixSource final : public image::RandomAccessSource {
 public:
  PrefixSource(std::string_view data, std::string name) : data_(data), name_(std::move(name)) {}
  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override {
    if (offset > data_.size() || size > data_.size() - offset) return OutOfRange(name_ + ": not arrived yet");
    if (size != 0) std::memcpy(dst, data_.data() + offset, size);
    return Status::Ok();
  }
  std::uint64_t Size() const override { return data_.size(); }
  const std::string& Name() const override { return name_; }

 private:
  std::string_view data_;
  std::string name_;
};

// Bytes of the image kept to find META in before the program is started on
// the rest: past them (an image whose META is not near its start), the
// program starts once the image is whole.
constexpr std::size_t kMaxPrefix = 16 << 20;

}  // namespace

bool FollowWanted(const Session& s) {
#ifdef _WIN32
  (void)s;
  return false;
#else
  return s.kind == "program" || s.kind == "process";
#endif
}

Status StartWhileReceiving(Session* ss, const void* data, std::size_t size) {
  Session& s = *ss;
  if (!s.follow || s.held || s.kind != "program") return Status::Ok();
  s.prefix.append(static_cast<const char*>(data), std::min(size, kMaxPrefix - s.prefix.size()));
  auto r = image::ImageReader::OpenStreamed(std::make_unique<PrefixSource>(s.prefix, s.image), kMaxPrefix);
  Result<std::vector<std::string>> args = r.ok() ? ArgsFromMeta(r->get(), s.image) : r.status();
  if (!args.ok()) {
    if (args.status().code() == Code::kOutOfRange && s.prefix.size() < kMaxPrefix) return Status::Ok();
    s.Log("the program starts once its image is whole (" + args.status().message() + ")");
    s.follow = false;
    s.prefix = std::string();
    return Status::Ok();
  }
  s.prefix = std::string();
  std::vector<std::string> argv = s.command;
  argv.insert(argv.end(), args->begin(), args->end());
  lib::ResumeFollow f;
  f.limit = s.spool_free > 0 ? s.spool_free : std::uint64_t{1} << 50;
  f.writer = platform::Env::Default()->ProcessId();
  f.path = s.image;
  s.as_it_arrived = true;
  return StartHeld(
      &s, argv,
      {"CKPT_RESUME=" + s.image, std::string(lib::kResumeFollowEnv) + "=" + lib::EncodeResumeFollow(f),
       "CKPT_DIR=" + s.ckpt_dir, "CKPT_NAME=" + s.name});
}

bool Runnable(const std::string& cmd) {
  auto is_file = [](const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
  };
  if (cmd.find('/') != std::string::npos || cmd.find('\\') != std::string::npos) return is_file(cmd);
  const char* path = std::getenv("PATH");
#ifdef _WIN32
  const char sep = ';';
#else
  const char sep = ':';
#endif
  std::string all = path != nullptr ? path : "";
  for (std::size_t b = 0; b <= all.size();) {
    std::size_t e = all.find(sep, b);
    if (e == std::string::npos) e = all.size();
    std::string dir = all.substr(b, e - b);
    if (!dir.empty() && (is_file(fs::path(dir) / cmd) || is_file(fs::path(dir) / (cmd + ".exe"))))
      return true;
    b = e + 1;
  }
  return false;
}

Status PreflightProgram(Session* ss) {
  Session& s = *ss;
  auto it = s.cfg.programs.find(s.name);
  std::string recorded = s.hello.value("program_path", std::string());
  if (it != s.cfg.programs.end()) {
    s.command = it->second;
  } else if (s.cfg.run_recorded_programs && !recorded.empty() && fs::exists(recorded)) {
    s.command = {recorded};
  } else {
    return NotFound(
        "program '" + s.name + "' is not available on " + s.host +
        (s.cfg.run_recorded_programs
             ? " (" + (recorded.empty() ? std::string("no path recorded") : recorded + " does not exist") +
                   " here; name it with --program " + s.name + "=PATH)"
             : " (the daemon's program map has no entry for it)"));
  }
  if (!Runnable(s.command[0])) {
    return NotFound("program '" + s.name + "' is not available on " + s.host + ": " + s.command[0] +
                    " is not an executable file here");
  }
  return PreflightPlace(&s);
}

Status PreflightPlace(Session* ss) {
  Session& s = *ss;
  s.cwd = !s.cfg.cwd.empty() ? s.cfg.cwd : s.hello.value("cwd", std::string());
  if (!IsDir(s.cwd)) {
    return NotFound("the working directory " + (s.cwd.empty() ? std::string("(none sent)") : s.cwd) +
                    " does not exist on " + s.host + "; name one with --cwd DIR");
  }
  std::string dir = s.hello.value("ckpt_dir", std::string());
  s.ckpt_dir = IsDir(dir) ? dir : s.cwd;
  std::string out = s.cfg.output.empty() ? s.cwd : s.cfg.output;
  if (!IsDir(out)) return NotFound("the output directory " + out + " does not exist on " + s.host);
  s.out_path = platform::JoinPath(out, s.name + ".out");
  s.err_path = platform::JoinPath(out, s.name + ".err");
  return Status::Ok();
}

Status RunProgram(Session* ss) {
  Session& s = *ss;
  s.step = "resume";
  if (s.held) {
    Status st = AwaitHeld(&s);
    if (st.ok() || !s.held->ended_early) return st;
    // A libckpt older than streamed resume opens the image as a whole file
    // and finds it incomplete: start it again on the image now whole (a
    // program that fails for another reason fails the same way again).
    s.Log(s.held->argv[0] + " ended before resuming from the image as it arrived (" + st.message() +
          "); starting it again on the whole image");
    s.held.reset();
    s.as_it_arrived = false;
  }
  ASSIGN_OR_RETURN(auto args, RecordedArgs(s.image));
  std::vector<std::string> argv = s.command;
  argv.insert(argv.end(), args.begin(), args.end());
  return RunHeld(&s, argv, {"CKPT_RESUME=" + s.image, "CKPT_DIR=" + s.ckpt_dir, "CKPT_NAME=" + s.name});
}

Status RunHeld(Session* ss, const std::vector<std::string>& argv, std::vector<std::string> env) {
  RETURN_IF_ERROR(StartHeld(ss, argv, std::move(env)));
  return AwaitHeld(ss);
}

Status StartHeld(Session* ss, const std::vector<std::string>& argv, std::vector<std::string> env) {
  Session& s = *ss;
  auto h = std::make_unique<HeldCopy>();
  h->argv = argv;
  ASSIGN_OR_RETURN(h->listener, platform::Listener::Loopback());
  h->token = platform::RandomHex16() + platform::RandomHex16();
  env.push_back("CKPT_HOLD_PORT=" + std::to_string(h->listener->port()));
  env.push_back("CKPT_HOLD_TOKEN=" + h->token);
  platform::StartOptions so;
  so.bound = false;
  so.cwd = s.cwd;
  so.stdin_null = true;
  so.stdout_path = s.out_path;
  so.stderr_path = s.err_path;
  so.new_session = true;
  h->started = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(h->child, platform::ChildProcess::Start(argv, env, so));
  s.Log("started " + argv[0] + " (pid " + std::to_string(h->child->pid()) + "), resuming" +
        (s.follow ? " as its image arrives" : ""));
  s.held = std::move(h);
  return Status::Ok();
}

Status AwaitHeld(Session* ss) {
  Session& s = *ss;
  HeldCopy& h = *s.held;
  const std::vector<std::string>& argv = h.argv;
  auto* child = h.child.get();
  // The restore: from when the image was whole or the copy started, whichever came later.
  auto t0 = std::max(h.started, s.arrived);
  // Until it has resumed and says so; it may fail on the way (a mismatched
  // program, a damaged image).
  std::unique_ptr<platform::Socket> sock;
  for (int waited = 0; !sock; waited += 200) {
    auto c = h.listener->Accept(200);
    if (c.ok()) {
      sock = std::move(c).value();
      break;
    }
    if (auto st = child->Poll()) {
      h.ended_early = true;
      return FailedPrecondition(argv[0] + " ended (" + platform::ChildProcess::Describe(*st) +
                                ") before resuming; its messages are in " + s.err_path);
    }
    if (waited > s.cfg.commit_timeout_s * 1000) return Timeout(argv[0] + " did not resume in time");
  }
  auto pid = lib::ReadReportLine(sock.get(), "CKPTHOLD", h.token, 10 * 1000);
  if (!pid.ok()) return pid.status();
  s.MaybeDie("die-before-ready");
  std::int64_t restore_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json r = {{"pid", child->pid()},
                      {"host", s.host},
                      {"cwd", s.cwd},
                      {"stdout", s.out_path},
                      {"stderr", s.err_path},
                      {"restore_ns", restore_ns},
                      {"as_it_arrived", s.as_it_arrived}};
  RETURN_IF_ERROR(SendJson(s.s, FrameType::kReady, r));
  Status st = s.AwaitCommit();
  if (!st.ok()) {
    sock.reset();  // the program (a group: its coordinator, with its members) ends, status 76, without
                   // running on
    for (int i = 0; i < 2000 && !child->Poll(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return st;  // the destructor kills it if it is still there
  }
  s.step = "release";
  RETURN_IF_ERROR(sock->SendAll("g", 1));
  child->Release();
  s.Released();
  nlohmann::json d = {{"pid", child->pid()}, {"host", s.host}};
  return SendJson(s.s, FrameType::kDone, d);
}

}  // namespace ckpt::net::internal
