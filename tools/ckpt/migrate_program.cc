// Migrating a ckpt program: it checkpoints and holds at its next safepoint,
// writing its image into the connection (no file here), the image goes to the target, which resumes it held;
// on DONE the source program exits (status 75), on any failure before it runs on.
#include <algorithm>
#include <filesystem>
#include <vector>

#include "command.h"
#include "lib/control.h"
#include "migrate.h"
#include "net/handoff.h"
#include "progress.h"

namespace ckpt::cli {

namespace {

namespace fs = std::filesystem;

// /proc/PID/<what> (Linux; "" elsewhere): for programs whose registration
// predates the "cwd" and "exe" fields.
std::string ProcLink(std::int64_t pid, const char* what) {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/" + std::to_string(pid) + "/" + what, ec);
  return ec ? std::string() : p.string();
}

std::uint64_t FileSize(const std::string& p) {
  std::error_code ec;
  auto n = p.empty() ? 0 : fs::file_size(p, ec);
  return ec ? 0 : n;
}

}  // namespace

Result<MigrateReport> MigrateProgram(const MigrateOptions& o, Connection* c, std::int64_t pid) {
  platform::Env* env = platform::Env::Default();
  ASSIGN_OR_RETURN(auto target, lib::FindProgram(env, pid));
  std::string name = target.reg.program;
  std::string cwd = target.reg.cwd;
  if (cwd.empty()) cwd = ProcLink(pid, "cwd");
  // The program's own view of its executable: under qemu-user /proc/PID/exe
  // is the emulator; on Windows there is no /proc.
  std::string exe = target.reg.exe;
  if (exe.empty()) exe = ProcLink(pid, "exe");
  MigrateReport rep;
  rep.kind = "program";
  net::SourceHandoff h(c->stream.get(), o.knobs.migrate);
  nlohmann::json hello = {{"id", NewMigrationId()},
                          {"kind", "program"},
                          {"name", name},
                          {"program_path", exe},
                          {"cwd", cwd},
                          {"ckpt_dir", target.reg.dir},
                          {"image_name", name + ".ckpt"},
                          {"image_bytes", FileSize(target.reg.last_image)},
                          {"source_host", env->HostName()}};
  // The target says whether it can take it before the program is touched.
  ASSIGN_OR_RETURN(auto accept, Greet(o, &h, hello));
  TransferProgress prog(o.progress);
  const std::string host = accept.value("host", std::string("the target"));
  ASSIGN_OR_RETURN(auto kept, KeptImage::Open(o, &h, name + ".ckpt"));
  prog.Phase("checkpoint of process " + std::to_string(pid));
  const std::int64_t t_hold = SteadyNanos();
  std::int64_t t_stream = 0;
  const std::uint64_t estimate = hello.value("image_bytes", std::uint64_t{0});
  // The image as the program writes it, straight into the connection.
  auto pump = [&](platform::Socket* s) -> Status {
    t_stream = SteadyNanos();
    prog.Phase("streaming to " + host);
    std::vector<char> buf(1 << 20);
    for (;;) {
      auto n = s->RecvSome(buf.data(), buf.size(), static_cast<int>(o.timeout * 1000));
      if (!n.ok()) return n.status().WithContext("reading the image from process " + std::to_string(pid));
      if (*n == 0) return Status::Ok();
      RETURN_IF_ERROR(h.sink()->Append(buf.data(), *n).WithContext("sending the image to " + host));
      RETURN_IF_ERROR(kept.Append(buf.data(), *n));
      prog.Update(h.sink()->Position(), std::max(estimate, h.sink()->Position()));
    }
  };
  auto held = lib::StreamAndHold(env, target, o.timeout, pump);
  if (!held.ok()) {
    h.Abort(held.status().message());
    return held.status().WithContext("checkpoint of process " + std::to_string(pid));
  }
  const bool streamed = held->image.empty();
  rep.checkpoint_ns = (streamed ? t_stream : SteadyNanos()) - t_hold;
  rep.transfer_ns = streamed ? SteadyNanos() - t_stream : 0;
  // From here on, a failure lets the held program run on.
  auto release = [&](bool exit) { return lib::ReleaseHeld(env, target, exit, o.timeout); };
  if (kept.wanted()) {
    Status st = streamed ? kept.Commit() : kept.KeepFile(held->image);
    rep.kept_image = kept.path();
    if (!st.ok()) {
      h.Abort(st.message());
      Status rel = release(false);
      return rel.ok()
                 ? st
                 : Status(st.code(), st.message() + "; and releasing the program failed: " + rel.message());
    }
  }
  if (!streamed) prog.Phase("sending to " + host);
  return FinishHeldMigration(o, c, &h, hello.value("id", std::string()), held->image, "program", release,
                             &prog, std::move(rep), t_hold);
}

}  // namespace ckpt::cli
