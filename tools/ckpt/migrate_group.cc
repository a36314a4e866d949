// Migrating a dependent process group: a coordinated checkpoint whose
// members stay parked (the coordinator holds back their DONE), the group
// image to the target, which resumes the whole group held until COMMIT; on
// DONE the source's members stop (status 75), on any failure before they go
// on exactly where they were (docs/migration.md, "Groups").
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "command.h"
#include "lib/control_group.h"
#include "migrate.h"
#include "net/handoff.h"
#include "progress.h"
#include "util/utf8.h"

namespace ckpt::cli {

namespace {

namespace fs = std::filesystem;

// The coordinator's working directory: from its registration, else (a
// coordinator older than the "cwd" field, on Linux) from /proc.
std::string GroupCwd(const lib::RegistrationRecord& reg, std::int64_t pid) {
  std::string cwd = reg.cwd;
  if (!cwd.empty()) return cwd;
#ifdef _WIN32
  (void)pid;
  return cwd;
#else
  std::error_code ec;
  auto p = fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd", ec);
  return ec ? std::string() : p.string();
#endif
}

// A program's name as `--program NAME=...` takes it: its base name, without .exe.
std::string MemberProgramName(const std::string& path) {
  std::string b =
      path.substr(path.find_last_of("/\\") == std::string::npos ? 0 : path.find_last_of("/\\") + 1);
  if (b.size() > 4) {
    std::string ext = b.substr(b.size() - 4);
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".exe") b.resize(b.size() - 4);
  }
  return b;
}

Result<std::vector<std::string>> Utf8Words(const std::vector<std::string>& words) {
  for (const auto& w : words)
    if (!IsValidUtf8(w)) return InvalidArgument("a member's command line is not valid UTF-8");
  return words;
}

// What the target needs to check before the group is touched: each member's
// program (name, recorded path, the command the coordinator started).
Result<nlohmann::json> MemberFacts(const lib::RegistrationRecord& reg) {
  if (reg.commands.empty())
    return FailedPrecondition("group " + reg.group +
                              "'s coordinator does not publish its members' commands (an older ckpt?)");
  nlohmann::json out = nlohmann::json::array();
  std::uint32_t rank = 0;
  for (const lib::MemberCommand& m : reg.commands) {
    ASSIGN_OR_RETURN(auto launch, Utf8Words(m.launch));
    ASSIGN_OR_RETURN(auto args, Utf8Words(m.args));
    if (m.program.empty() || !IsValidUtf8(m.program))
      return FailedPrecondition("member " + std::to_string(rank) + " of group " + reg.group +
                                " has not joined yet (or its path is not UTF-8); try again");
    out.push_back({{"rank", rank},
                   {"name", MemberProgramName(m.program)},
                   {"program", m.program},
                   {"launch", launch},
                   {"args", args}});
    ++rank;
  }
  return out;
}

std::uint64_t GroupImageSize(const std::string& p) {
  std::error_code ec;
  auto n = p.empty() ? 0 : fs::file_size(p, ec);
  return ec ? 0 : n;
}

}  // namespace

Result<MigrateReport> MigrateGroup(const MigrateOptions& o, Connection* c,
                                   const lib::RegistrationRecord& reg) {
  platform::Env* env = platform::Env::Default();
  std::string name = reg.group;
  std::int64_t pid = reg.pid;
  std::string cwd = GroupCwd(reg, pid);
  std::string dir = reg.dir;
  if (!dir.empty() && dir[0] != '/' && !cwd.empty()) dir = (fs::path(cwd) / dir).lexically_normal().string();
  ASSIGN_OR_RETURN(auto members, MemberFacts(reg));
  MigrateReport rep;
  rep.kind = "group";
  net::SourceHandoff h(c->stream.get(), o.knobs.migrate);
  nlohmann::json hello = {{"id", NewMigrationId()},
                          {"kind", "group"},
                          {"name", name},
                          {"members", members},
                          {"cwd", cwd},
                          {"ckpt_dir", dir},
                          {"image_name", name + ".ckpt"},
                          {"image_bytes", GroupImageSize(reg.last_image)},
                          {"every", reg.every},
                          {"timeout", reg.timeout},
                          {"keep", reg.keep},
                          {"codec", reg.codec},
                          {"source_host", env->HostName()}};
  // The target says whether it can run every member before the group is touched.
  ASSIGN_OR_RETURN(auto accept, Greet(o, &h, hello));
  TransferProgress prog(o.progress);
  const std::string host = accept.value("host", std::string("the target"));
  ASSIGN_OR_RETURN(auto kept, KeptImage::Open(o, &h, name + ".ckpt"));
  prog.Phase("checkpoint of group " + name);
  const std::int64_t t_hold = SteadyNanos();
  std::int64_t t_stream = 0;
  const std::uint64_t estimate = hello.value("image_bytes", std::uint64_t{0});
  // The image as the coordinator sends it, straight into the connection.
  lib::ImagePump pump = [&](const std::string& piece) -> Status {
    if (t_stream == 0) {
      t_stream = SteadyNanos();
      prog.Phase("streaming to " + host);
    }
    RETURN_IF_ERROR(h.sink()->Append(piece.data(), piece.size()).WithContext("sending the image to " + host));
    RETURN_IF_ERROR(kept.Append(piece.data(), piece.size()));
    prog.Update(h.sink()->Position(), std::max(estimate, h.sink()->Position()));
    return Status::Ok();
  };
  auto held = lib::GroupCheckpointAndHold(reg, o.timeout, pump);
  if (!held.ok()) {
    h.Abort(held.status().message());
    return held.status().WithContext("checkpoint of group " + name);
  }
  const std::int64_t t_held = SteadyNanos();
  rep.checkpoint_ns = (held->streamed && t_stream != 0 ? t_stream : t_held) - t_hold;
  rep.transfer_ns = held->streamed && t_stream != 0 ? t_held - t_stream : 0;
  // From here on, a failure lets the parked members go on.
  auto release = [&](bool exit) { return lib::DecideHeldGroup(env, &*held, exit, o.timeout); };
  auto fail_keep = [&](const Status& st) -> Status {
    h.Abort(st.message());
    Status rel = release(false);
    return rel.ok() ? st
                    : Status(st.code(), st.message() + "; and releasing the group failed: " + rel.message());
  };
  if (kept.wanted()) {
    Status st = held->streamed ? kept.Commit() : kept.KeepFile(held->image);
    rep.kept_image = kept.path();
    if (!st.ok()) return fail_keep(st);
  }
  if (!held->streamed) prog.Phase("sending to " + host);
  return FinishHeldMigration(o, c, &h, hello.value("id", std::string()), held->image, "group", release, &prog,
                             std::move(rep), t_hold);
}

}  // namespace ckpt::cli
