// ckpt receive: the target side of `ckpt migrate` over ssh. Speaks the
// migration protocol on standard input and output (so nothing else may
// write there: the program's own output goes to files), messages on stderr.
#include <cstdio>

#include "command.h"
#include "knobs.h"
#include "migrate.h"
#include "net/receive.h"
#include "util/text.h"
#if CKPT_HAVE_ENGINE
#include "net/engine_restore.h"
#endif

namespace ckpt::cli {

namespace {

struct ReceiveCliOptions {
  std::string spool;
  std::vector<std::string> programs;
  std::string cwd, output;
  bool keep = false;
  bool quiet = false;
  int commit_timeout = 600;
};

// Splits NAME=COMMAND (COMMAND's words at spaces).
Status AddProgram(const std::string& spec, net::ReceiveConfig* cfg) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    return InvalidArgument("--program wants NAME=COMMAND, not '" + spec + "'");
  std::vector<std::string> words = SplitWords(spec.substr(eq + 1));
  if (words.empty()) return InvalidArgument("--program " + spec + " names no command");
  cfg->programs[spec.substr(0, eq)] = words;
  return Status::Ok();
}

int Run(const ReceiveCliOptions& o) {
  net::ReceiveConfig cfg;
  cfg.fault = KnobsFromEnvironment(platform::Env::Default()).receive_fault;
  cfg.spool = o.spool.empty() ? net::DefaultSpool() : o.spool;
  for (const auto& p : o.programs) {
    Status st = AddProgram(p, &cfg);
    if (!st.ok()) return ReportError(st);
  }
  cfg.cwd = o.cwd;
  cfg.output = o.output;
  cfg.keep = o.keep;
  cfg.peer = "ssh";
  cfg.commit_timeout_s = o.commit_timeout;
#if CKPT_HAVE_ENGINE
  cfg.restore_process = net::EngineRestorer();
#endif
  if (!o.quiet) cfg.log = [](const std::string& m) { std::fprintf(stderr, "ckpt receive: %s\n", m.c_str()); };
  auto stream = net::StdioStream("the source");
  Status st = net::Receive(stream.get(), cfg);
  if (!st.ok()) {
    std::fprintf(stderr, "ckpt receive: error: %s\n", st.message().c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void AddReceive(CLI::App& app, Runner* run) {
  auto o = std::make_shared<ReceiveCliOptions>();
  CLI::App* c = app.add_subcommand(
      "receive",
      "The target side of `ckpt migrate` (run by ssh): takes a computation on standard input, restores "
      "it, and lets it run once the source commits");
  c->add_option("--spool", o->spool,
                "Where received images wait (default: $CKPT_SPOOL, else ~/.local/state/ckpt/spool)");
  c->add_option("--program", o->programs,
                "NAME=COMMAND: run program NAME with COMMAND (launcher words, then the binary); repeatable");
  c->add_option("--cwd", o->cwd, "Working directory for programs (default: the source's path)");
  c->add_option("--output", o->output,
                "Where programs' NAME.out and NAME.err go (default: the working directory)");
  c->add_flag("--keep", o->keep, "Keep the received image in the spool");
  c->add_option("--commit-timeout", o->commit_timeout,
                "Seconds a restored copy waits for the source's commit (default 600)");
  c->add_flag("-q,--quiet", o->quiet, "No messages on stderr");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
