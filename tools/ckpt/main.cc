// ckpt: checkpoint, inspect, convert and resume computations.
#include <cstdio>

#include "ckpt/ckpt.hpp"
#include "command.h"
#include "image/codec.h"
#include "lib/program_image.h"

int main(int argc, char** argv) {
  CLI::App app{
      "ckpt moves running computations between machines, operating systems and CPU "
      "architectures.\nPrograms built with libckpt write portable images; this tool inspects, "
      "verifies,\nconverts and resumes them, and asks running programs to checkpoint.",
      "ckpt"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ckpt ") + ckpt::kVersion + " (" + ckpt::lib::PlatformTag() +
                                        ", codecs: " + ckpt::image::AvailableCodecs() + ")");
  app.footer(
      "Run `ckpt VERB --help` for a verb's options. Exit status: 0 ok, 1 failure, 2 usage,\n"
      "3 bad or mismatched image. See docs/cli.md.");
  ckpt::cli::Runner run;
  ckpt::cli::AddInspect(app, &run);
  ckpt::cli::AddVerify(app, &run);
  ckpt::cli::AddConvert(app, &run);
  ckpt::cli::AddCheckpoint(app, &run);
  ckpt::cli::AddList(app, &run);
  ckpt::cli::AddRelease(app, &run);
  ckpt::cli::AddResume(app, &run);
  ckpt::cli::AddRun(app, &run);
#ifndef _WIN32
  ckpt::cli::AddJob(app, &run);
  ckpt::cli::AddEvacuate(app, &run);
  ckpt::cli::AddRebalance(app, &run);
#endif
  ckpt::cli::AddMigrate(app, &run);
  ckpt::cli::AddReceive(app, &run);
#if CKPT_HAVE_ENGINE
  ckpt::cli::AddDump(app, &run);
  ckpt::cli::AddRestore(app, &run);
  ckpt::cli::AddCheck(app, &run);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : ckpt::cli::kExitUsage;
  }
  if (!run) return ckpt::cli::kExitUsage;
  try {
    return run();
  } catch (const nlohmann::json::exception& e) {
    // Registration files and image strings are read as JSON; a malformed one
    // is an error, never an abort.
    std::fflush(stdout);
    std::fprintf(stderr, "ckpt: error: malformed JSON data: %s\n", e.what());
    return ckpt::cli::kExitFailure;
  }
}
