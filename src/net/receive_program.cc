// Receiving a CKPT program: the program runs here from the received image
// (CKPT_RESUME), with its output in files, and waits at its first safepoint
// on a loopback connection until the source commits ('g'); if this side
// goes away first, the program ends (status 76) without running on.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "image/reader.h"
#include "lib/hold.h"
#include "lib/program_image.h"
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
Result<std::vector<std::string>> RecordedArgs(const std::string& image) {
  platform::Env* env = platform::Env::Default();
  ASSIGN_OR_RETURN(auto src, env->NewRandomAccessFile(image));
  ASSIGN_OR_RETURN(auto r, image::ImageReader::Open(std::move(src)));
  if (r->header().kind != image::ImageKind::kProgram)
    return InvalidArgument(std::string("the source sent a ") + image::ImageKindName(r->header().kind) +
                           " image as a program");
  const auto* ms = r->Find(lib::kSectionMeta);
  if (ms == nullptr) return Corruption(image + " has no META section");
  ASSIGN_OR_RETURN(auto data, r->ReadSection(*ms));
  lib::Meta meta;
  RETURN_IF_ERROR(lib::DecodeMeta(data, &meta));
  return lib::ProgramArgs(meta);
}

}  // namespace

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
  ASSIGN_OR_RETURN(auto args, RecordedArgs(s.image));
  std::vector<std::string> argv = s.command;
  argv.insert(argv.end(), args.begin(), args.end());
  return RunHeld(&s, argv, {"CKPT_RESUME=" + s.image, "CKPT_DIR=" + s.ckpt_dir, "CKPT_NAME=" + s.name});
}

Status RunHeld(Session* ss, const std::vector<std::string>& argv, std::vector<std::string> env) {
  Session& s = *ss;
  ASSIGN_OR_RETURN(auto listener, platform::Listener::Loopback());
  std::string token = platform::RandomHex16() + platform::RandomHex16();
  env.push_back("CKPT_HOLD_PORT=" + std::to_string(listener->port()));
  env.push_back("CKPT_HOLD_TOKEN=" + token);
  platform::StartOptions so;
  so.bound = false;
  so.cwd = s.cwd;
  so.stdin_null = true;
  so.stdout_path = s.out_path;
  so.stderr_path = s.err_path;
  so.new_session = true;
  auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(auto child, platform::ChildProcess::Start(argv, env, so));
  s.Log("started " + argv[0] + " (pid " + std::to_string(child->pid()) + "), resuming");
  // Until it has resumed and says so; it may fail on the way (a mismatched
  // program, a damaged image).
  std::unique_ptr<platform::Socket> sock;
  for (int waited = 0; !sock; waited += 200) {
    auto c = listener->Accept(200);
    if (c.ok()) {
      sock = std::move(c).value();
      break;
    }
    if (auto st = child->Poll()) {
      return FailedPrecondition(argv[0] + " ended (" + platform::ChildProcess::Describe(*st) +
                                ") before resuming; its messages are in " + s.err_path);
    }
    if (waited > s.cfg.commit_timeout_s * 1000) return Timeout(argv[0] + " did not resume in time");
  }
  auto pid = lib::ReadReportLine(sock.get(), "CKPTHOLD", token, 10 * 1000);
  if (!pid.ok()) return pid.status();
  MaybeDieBeforeReady();
  std::int64_t restore_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json r = {{"pid", child->pid()},  {"host", s.host},       {"cwd", s.cwd},
                      {"stdout", s.out_path}, {"stderr", s.err_path}, {"restore_ns", restore_ns}};
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
