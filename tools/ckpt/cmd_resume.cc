// ckpt resume IMAGE [-- PROGRAM ARGS...]: run the program so that it resumes
// from IMAGE (through the CKPT_RESUME environment variable). Without
// PROGRAM the image's recorded program runs: only for the user's own images.
#include <cstdio>

#include "command.h"
#include "group/coordinator.h"
#include "lib/program_image.h"
#include "platform/file_owner.h"
#include "platform/process.h"

namespace ckpt::cli {

namespace {

struct ResumeOptions {
  std::string image;
  std::vector<std::string> command;
  std::string dir;
  bool dry_run = false;
  GroupResumeOverrides group;
  group::CoordinatorOptions co;
};

// Without a program named on the command line, ckpt runs the one the image
// names: refused for an image another user wrote (or may have written),
// which would run their program with the caller's privileges. Otherwise
// the image is read again from the file that was checked.
Result<std::unique_ptr<image::ImageReader>> OpenOwnImage(const std::string& path) {
  bool own = false;
  std::string why;
  ASSIGN_OR_RETURN(auto src, platform::OpenCheckingOwner(path, &own, &why));
  if (!own) {
    return FailedPrecondition(
        path + ": " + why +
        "; resuming it runs the program the image names with your privileges. Name the "
        "program yourself: ckpt resume IMAGE -- PROGRAM [ARGS] (a group image: --spec or "
        "--bindir)");
  }
  return image::ImageReader::Open(std::move(src));
}

int Run(const ResumeOptions& o) {
  platform::Env* env = platform::Env::Default();
  std::string path;
  auto r = OpenImage(o.image, &path);
  if (!r.ok()) return ReportError(r.status());
  bool named = !o.command.empty() || ((*r)->header().kind == image::ImageKind::kGroup &&
                                      (!o.group.spec.empty() || !o.group.bindir.empty()));
  if (!named) {
    auto own = OpenOwnImage(path);
    if (!own.ok()) return ReportError(own.status());
    r = std::move(own);
  }
  if ((*r)->header().kind == image::ImageKind::kGroup) {
    r->reset();
    group::CoordinatorOptions co = o.co;
    if (!o.dir.empty()) co.dir = o.dir;
    return ResumeGroup(path, o.command, o.group, co);
  }
  if ((*r)->header().kind != image::ImageKind::kProgram) {
    return ReportError(InvalidArgument(path + " is a " + image::ImageKindName((*r)->header().kind) +
                                       " image; `ckpt resume` takes program images"));
  }
  std::vector<std::string> argv = o.command;
  std::string image_name;  // the writer's session name, when the image's own program runs
  if (argv.empty()) {
    const auto* ms = (*r)->Find(lib::kSectionMeta);
    lib::Meta meta;
    if (ms != nullptr) {
      auto data = (*r)->ReadSection(*ms);
      if (!data.ok()) return ReportError(data.status());
      Status st = lib::DecodeMeta(*data, &meta);
      if (!st.ok()) return ReportError(st);
    }
    std::string prog = meta.Get("program.path");
    if (prog.empty() || !env->FileExists(prog)) {
      return ReportError(NotFound("the program that wrote " + path + " (" +
                                  (prog.empty() ? "unknown" : prog) +
                                  ") is not here; name it: ckpt resume IMAGE -- PROGRAM [ARGS]"));
    }
    argv.push_back(prog);
    image_name = meta.Get("program.name");
    for (auto& a : lib::ProgramArgs(meta)) argv.push_back(std::move(a));
  }
  std::vector<std::string> envs = {"CKPT_RESUME=" + path};
  std::string dir = o.dir.empty() ? platform::DirName(path) : o.dir;
  if (env->GetEnv("CKPT_DIR").empty() || !o.dir.empty()) envs.push_back("CKPT_DIR=" + dir);
  // The recorded program resumes under the name it wrote the image with (it
  // may have run with --ckpt-name); a program named on the command line must
  // match the image's name itself.
  if (!image_name.empty() && env->GetEnv("CKPT_NAME").empty()) envs.push_back("CKPT_NAME=" + image_name);
  if (o.dry_run) {
    for (const auto& e : envs) std::printf("%s ", e.c_str());
    for (const auto& a : argv) std::printf("%s ", a.c_str());
    std::printf("\n");
    return kExitOk;
  }
  r->reset();
  std::fflush(stdout);
  return ReportError(platform::ExecProgram(argv, envs));
}

}  // namespace

void AddResume(CLI::App& app, Runner* run) {
  auto o = std::make_shared<ResumeOptions>();
  o->co.name.clear();
  o->co.dir.clear();
  CLI::App* c = app.add_subcommand(
      "resume",
      "Resume a program from an image: ckpt resume IMAGE [-- PROGRAM ARGS]. Without PROGRAM, runs the "
      "program path recorded in the image with its recorded arguments (refused for an image that is not "
      "yours, or that others may write: name the program then). Exits with the program's status.");
  c->add_option("image", o->image, "Image file, or a directory (its newest image)")->required();
  c->add_option("command", o->command, "Program and arguments (after --)");
  c->add_option("--dir", o->dir,
                "Where the resumed program writes new images (default: the image's directory)");
  c->add_flag("--dry-run", o->dry_run, "Print the command and environment instead of running it");
  auto* g = c->add_option_group("group images", "Resuming a dependent process group (docs/groups.md)");
  g->add_option("--spec", o->group.spec, "Per-member commands, one a line, instead of those in the image");
  g->add_option(
      "--bindir", o->group.bindir,
      "Run each member's program by its base name from DIR (NAME or NAME.exe), with its recorded arguments");
  g->add_option("--launcher", o->group.launcher, "Prefix every member command with this (e.g. wine)");
  g->add_option("--name", o->co.name, "Group name (default: the image's)");
  g->add_option("--every", o->co.every_seconds, "Checkpoint the group every S seconds");
  g->add_option("--timeout", o->co.timeout_seconds,
                "Seconds for members to reach a quiescent point (default 30)");
  g->add_option("--keep", o->co.keep, "Group images kept (default 2)");
  g->add_option("--codec", o->co.codec, "none, zstd or zlib");
  g->add_option("--stop-after", o->co.stop_after, "Stop the members (status 75) after the N-th checkpoint");
  g->add_flag("-q,--quiet", o->co.quiet, "No progress messages");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
