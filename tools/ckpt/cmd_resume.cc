// ckpt resume IMAGE [-- PROGRAM ARGS...]: run the program so that it resumes
// from IMAGE (through the CKPT_RESUME environment variable).
#include <cstdio>

#include "command.h"
#include "lib/program_image.h"

namespace ckpt::cli {

namespace {

struct ResumeOptions {
  std::string image;
  std::vector<std::string> command;
  std::string dir;
  bool dry_run = false;
};

int Run(const ResumeOptions& o) {
  platform::Env* env = platform::Env::Default();
  std::string path;
  auto r = OpenImage(o.image, &path);
  if (!r.ok()) return ReportError(r.status());
  if ((*r)->header().kind != image::ImageKind::kProgram) {
    return ReportError(InvalidArgument(path + " is a " + image::ImageKindName((*r)->header().kind) +
                                       " image; `ckpt resume` takes program images"));
  }
  std::vector<std::string> argv = o.command;
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
      return ReportError(NotFound("the program that wrote " + path + " (" + (prog.empty() ? "unknown" : prog) +
                                  ") is not here; name it: ckpt resume IMAGE -- PROGRAM [ARGS]"));
    }
    argv.push_back(prog);
    std::string args = meta.Get("program.args");
    if (meta.Get("program.argc") != "0") {
      std::size_t b = 0;
      while (true) {
        std::size_t e = args.find('\0', b);
        argv.push_back(args.substr(b, e == std::string::npos ? std::string::npos : e - b));
        if (e == std::string::npos) break;
        b = e + 1;
      }
    }
  }
  std::vector<std::string> envs = {"CKPT_RESUME=" + path};
  std::string dir = o.dir.empty() ? platform::DirName(path) : o.dir;
  if (env->GetEnv("CKPT_DIR").empty() || !o.dir.empty()) envs.push_back("CKPT_DIR=" + dir);
  if (o.dry_run) {
    for (const auto& e : envs) std::printf("%s ", e.c_str());
    for (const auto& a : argv) std::printf("%s ", a.c_str());
    std::printf("\n");
    return kExitOk;
  }
  r->reset();
  auto rc = env->RunProgram(argv, envs);
  if (!rc.ok()) return ReportError(rc.status());
  return *rc;
}

}  // namespace

void AddResume(CLI::App& app, Runner* run) {
  auto o = std::make_shared<ResumeOptions>();
  CLI::App* c = app.add_subcommand(
      "resume", "Resume a program from an image: ckpt resume IMAGE [-- PROGRAM ARGS]. Without PROGRAM, "
                "runs the program recorded in the image with its arguments. Exits with the program's status.");
  c->add_option("image", o->image, "Image file, or a directory (its newest image)")->required();
  c->add_option("command", o->command, "Program and arguments (after --)");
  c->add_option("--dir", o->dir, "Where the resumed program writes new images (default: the image's directory)");
  c->add_flag("--dry-run", o->dry_run, "Print the command and environment instead of running it");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
