// ckptd: receives migrations over ckpt:// (mutual TLS) and resumes them on
// this host, starting only the programs its configuration names
// (docs/ckptd.md).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "ckpt/ckpt.hpp"
#include "config.h"
#include "serve.h"

int main(int argc, char** argv) {
  CLI::App app{
      "ckptd receives computations that `ckpt migrate --to ckpt://HOST:PORT` sends, over mutual TLS, and\n"
      "resumes them here. It runs only the programs its configuration maps, for the peers (certificate\n"
      "subjects) it lists. It stays in the foreground and logs on standard error (run it under systemd:\n"
      "packaging/systemd/ckptd.service).",
      "ckptd"};
  app.set_version_flag("--version", std::string("ckptd ") + ckpt::kVersion);
  std::string config, check;
  bool foreground = false;
  auto* c = app.add_option("--config", config, "The configuration file (docs/ckptd.md)");
  auto* k = app.add_option("--check-config", check, "Check FILE (syntax, TLS files, programs) and exit");
  app.add_flag("--foreground", foreground,
               "Stay in the foreground (what ckptd always does; accepted for scripts that say so)");
  c->excludes(k);
  app.footer(
      "Exit status: 0 ok (stopped by SIGTERM/SIGINT), 1 failure, 2 usage or bad configuration.\n"
      "Configuration reference and security model: docs/ckptd.md.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (config.empty() && check.empty()) {
    std::fprintf(stderr, "ckptd: --config FILE or --check-config FILE is required (ckptd --help)\n");
    return 2;
  }
  auto cfg = ckpt::ckptd::LoadConfig(check.empty() ? config : check);
  if (!cfg.ok()) {
    std::fprintf(stderr, "ckptd: %s\n", cfg.status().message().c_str());
    return 2;
  }
  if (!check.empty()) {
    // The TLS files are loaded as the daemon would (a key that does not
    // match its certificate is found here), on a port the OS picks.
    auto l = ckpt::net::TlsListener::Listen("127.0.0.1", 0, cfg->tls, cfg->insecure_no_tls);
    if (!l.ok()) {
      std::fprintf(stderr, "ckptd: %s: %s\n", check.c_str(), l.status().message().c_str());
      return 2;
    }
    std::printf("%s: ok (%s, %zu programs, %zu peers)\n", check.c_str(),
                cfg->insecure_no_tls ? "no TLS" : "mutual TLS", cfg->programs.size(), cfg->peers.size());
    return 0;
  }
  return ckpt::ckptd::Serve(*cfg);
}
