// ckpt migrate TARGET --to DEST: move a running computation to another host
// (docs/migration.md). TARGET: a ckpt program's PID, a dependent process
// group (its name, id or coordinator's PID), or an unmodified process's PID
// (the transparent engine; --tree for its descendants too).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "command.h"
#include "image/codec.h"
#include "lib/control.h"
#include "lib/control_group.h"
#include "migrate.h"
#include "net/handoff.h"
#include "net/ssh.h"
#include "net/tls.h"
#include "progress.h"
#include "util/text.h"

namespace ckpt::cli {

std::string NewMigrationId() {
  return platform::RandomHex16();
}

std::int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

// --compress: checks both sides can, and turns it on for the image frames.
Status ApplyCompression(const MigrateOptions& o, const nlohmann::json& accept, net::FrameSink* sink) {
  if (o.compress == "none") return Status::Ok();
  if (o.compress != "zstd") return InvalidArgument("--compress takes none or zstd, not '" + o.compress + "'");
  if (!image::CodecAvailable(image::CodecId::kZstd)) return NotSupported("this build of ckpt has no zstd");
  std::string theirs = accept.value("codecs", std::string());
  if (theirs.find("zstd") == std::string::npos) {
    return NotSupported("the target's ckpt cannot decompress zstd (it has: " + theirs +
                        "); migrate with --compress none");
  }
  sink->set_compress(true);
  return Status::Ok();
}

}  // namespace

Result<nlohmann::json> Greet(const MigrateOptions& o, net::SourceHandoff* h, const nlohmann::json& hello) {
  ASSIGN_OR_RETURN(auto accept, h->Hello(hello));
  Status cs = ApplyCompression(o, accept, h->sink());
  if (!cs.ok()) {
    h->Abort(cs.message());
    return cs;
  }
  return accept;
}

Result<std::string> AskOutcome(Connection* c, const std::string& id) {
  if (!c->reconnect) return NotSupported("this transport cannot ask the target again");
  Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto s = c->reconnect();
    if (!s.ok()) {
      last = s.status();
      continue;
    }
    net::SourceHandoff h(s->get());
    auto a = h.Hello({{"kind", "query"}, {"id", id}});
    if (!a.ok()) {
      last = a.status();
      continue;
    }
    std::string outcome = a->value("outcome", std::string());
    if (outcome == "committed" || outcome == "not committed") return outcome;
    last = Timeout("the target's receiver still holds migration " + id);
  }
  return last.WithContext("asking " + c->dest + " whether the migration was committed");
}

Result<MigrateReport> FinishHeldMigration(const MigrateOptions& o, Connection* c, net::SourceHandoff* h,
                                          const std::string& id, const std::string& image,
                                          const std::string& what,
                                          const std::function<Status(bool exit)>& release,
                                          TransferProgress* prog, MigrateReport rep, std::int64_t t_hold) {
  auto fail = [&](const Status& st) -> Status {
    h->Abort(st.message());
    Status rel = release(false);
    if (!rel.ok())
      return Status(st.code(), st.message() + "; and releasing the " + what + " failed: " + rel.message());
    return st;
  };
  const int wait_ms = static_cast<int>(o.timeout * 1000);
  std::int64_t t_send = SteadyNanos();
  Status sent = image.empty()
                    ? Status::Ok()
                    : h->SendFile(image, [prog](std::uint64_t d, std::uint64_t t) { prog->Update(d, t); });
  if (sent.ok()) sent = h->EndImage();
  if (!sent.ok()) return fail(sent);
  rep.image_bytes = h->sink()->Position();
  rep.bytes_sent = h->sink()->sent();
  rep.transfer_ns += SteadyNanos() - t_send;
  prog->Phase("resuming the " + what + " on the target");
  auto ready = h->AwaitReady(wait_ms);
  if (!ready.ok()) return fail(ready.status());
  rep.ready = *ready;
  rep.restore_ns = ready->value("restore_ns", std::int64_t{0});
  auto done = h->Commit(wait_ms);
  if (!done.ok() && h->committed()) {
    // COMMIT went out but DONE did not come back: ask the target again.
    auto outcome = AskOutcome(c, id);
    if (outcome.ok() && *outcome == "committed") {
      std::fprintf(stderr,
                   "ckpt: the target's confirmation was lost, but its record says the %s runs there\n",
                   what.c_str());
      done = rep.ready;
    } else if (outcome.ok()) {
      return fail(done.status().WithContext("the target did not take the commit"));
    }
  }
  if (!done.ok()) {
    if (!h->committed()) return fail(done.status());
    // COMMIT went out and the outcome cannot be learnt: the target may run
    // it. Losing the computation is worse than running it twice: the source
    // runs on.
    Status rel = release(false);
    return Internal(done.status().message() + "; the target " + rep.ready.value("host", std::string("?")) +
                    " may be running the " + what + " (pid " + std::to_string(rep.ready.value("pid", 0)) +
                    ") — the source runs on" +
                    (rel.ok() ? "" : " (releasing it failed: " + rel.message() + ")"));
  }
  rep.done = *done;
  rep.downtime_ns = SteadyNanos() - t_hold;  // the target's copy runs
  prog->End();
  Status end = release(true);
  if (!end.ok()) {
    std::fprintf(stderr, "ckpt: warning: the %s runs on the target, but ending it here failed: %s\n",
                 what.c_str(), end.message().c_str());
  }
  return rep;
}

Result<KeptImage> KeptImage::Open(const MigrateOptions& o, net::SourceHandoff* h, const std::string& file) {
  KeptImage k;
  if (o.keep_image.empty()) return k;
  platform::Env* env = platform::Env::Default();
  Status st = env->CreateDirs(o.keep_image);
  auto f = st.ok() ? env->NewTempFile(o.keep_image, file) : Result<std::unique_ptr<platform::TempFile>>(st);
  if (!f.ok()) {
    h->Abort(f.status().message());
    return f.status().WithContext("--keep-image " + o.keep_image);
  }
  k.file_ = std::move(f).value();
  k.path_ = platform::JoinPath(o.keep_image, file);
  return k;
}

Status KeptImage::Append(const void* data, std::size_t size) {
  return file_ ? file_->Append(data, size).WithContext("--keep-image") : Status::Ok();
}

Status KeptImage::Commit() {
  if (!file_) return Status::Ok();
  RETURN_IF_ERROR(file_->Sync().WithContext("--keep-image"));
  return file_->Commit(path_, /*replace=*/true).status().WithContext("--keep-image");
}

Status KeptImage::KeepFile(const std::string& from) {
  if (!file_) return Status::Ok();
  const std::string dir = platform::DirName(path_);
  path_ = platform::JoinPath(dir, platform::BaseName(from));
  std::error_code ec;
  std::filesystem::copy_file(from, path_, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return IoError("--keep-image: copy " + from + " to " + dir + ": " + ec.message());
  return Status::Ok();
}

namespace {

// The remote `ckpt receive` command line.
std::vector<std::string> ReceiveCommand(const MigrateOptions& o) {
  std::vector<std::string> argv = SplitWords(o.remote_ckpt);
  argv.push_back("receive");
  if (!o.remote_spool.empty()) argv.insert(argv.end(), {"--spool", o.remote_spool});
  for (const auto& p : o.programs) argv.insert(argv.end(), {"--program", p});
  if (!o.cwd.empty()) argv.insert(argv.end(), {"--cwd", o.cwd});
  if (!o.output.empty()) argv.insert(argv.end(), {"--output", o.output});
  if (o.keep) argv.push_back("--keep");
  return argv;
}

Result<Connection> Connect(const MigrateOptions& o) {
  if (o.to.rfind("ssh://", 0) == 0) {
    ASSIGN_OR_RETURN(auto target, net::ParseSshUrl(o.to));
    net::SshOptions so;
    so.command = o.ssh_command;
    so.options = o.ssh_options;
    std::vector<std::string> remote = ReceiveCommand(o);
    ASSIGN_OR_RETURN(auto ch, net::StartSsh(target, so, remote));
    auto* raw = ch.get();
    Connection c;
    c.dest = o.to;
    c.stream = std::move(ch);
    c.transport_text = [raw] { return raw->ErrorText(); };
    c.reconnect = [target, so, remote]() -> Result<std::unique_ptr<net::Stream>> {
      ASSIGN_OR_RETURN(auto again, net::StartSsh(target, so, remote));
      return std::unique_ptr<net::Stream>(std::move(again));
    };
    c.finish = [raw](int grace_ms) -> std::string {
      int st = raw->Finish(grace_ms);
      if (raw->EndedByUs()) {
        return "ssh was still connected " + std::to_string(grace_ms / 1000) +
               " s after the handoff, so ckpt ended it (a program on the target holds the session open: "
               "under Wine, the programs ckpt receive starts inherit its standard error); the migrated "
               "program runs on";
      }
      // -1: unknown (a Linux ssh run by Wine; its messages went to our stderr).
      if (st == 0 || st == -1) return "";
      if (st == 255) return "ssh failed (exit status 255)";
      if (st == 127) return "the remote command was not found (exit status 127; --remote-ckpt names it)";
      return "ssh ended with exit status " + std::to_string(st);
    };
    return c;
  }
  if (o.to.rfind("ckpt://", 0) == 0) {
    if (o.insecure_no_tls) {
      std::fprintf(
          stderr,
          "ckpt: warning: --insecure-no-tls: the image crosses the network unencrypted, and neither side "
          "knows who the other is\n");
    }
    net::TlsFiles f;
    f.cert = o.cert;
    f.key = o.key;
    f.ca = o.ca;
    ASSIGN_OR_RETURN(auto s, net::ConnectDaemon(o.to, f, o.insecure_no_tls));
    Connection c;
    c.dest = o.to;
    c.stream = std::move(s);
    c.reconnect = [o, f]() { return net::ConnectDaemon(o.to, f, o.insecure_no_tls); };
    return c;
  }
  return InvalidArgument("--to wants ssh://[user@]host[:port] or ckpt://host:port, not '" + o.to + "'");
}

// An error with what the transport said, when that explains it (ssh's
// "Permission denied", "Connection refused", a remote "command not found").
Status WithTransportText(const Status& st, Connection* c) {
  std::string fin = c->finish(-1);
  std::string text = c->transport_text();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::string last = text.substr(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  std::string extra;
  if (!fin.empty()) extra += "; " + fin;
  if (!last.empty()) extra += "; " + c->dest + " said: " + last;
  return extra.empty() ? st : Status(st.code(), st.message() + extra);
}

void PrintReport(const MigrateOptions& o, const MigrateReport& r) {
  auto ms = [](std::int64_t ns) { return ns / 1e6; };
  std::string host = r.ready.value("host", std::string("?"));
  std::int64_t pid = r.done.value("pid", r.ready.value("pid", std::int64_t{0}));
  if (o.json) {
    nlohmann::ordered_json j = {{"kind", r.kind},
                                {"target", o.target},
                                {"to", o.to},
                                {"host", host},
                                {"pid", pid},
                                {"image_bytes", r.image_bytes},
                                {"bytes_sent", r.bytes_sent},
                                {"phases_ms",
                                 {{"checkpoint", ms(r.checkpoint_ns)},
                                  {"transfer", ms(r.transfer_ns)},
                                  {"restore", ms(r.restore_ns)}}},
                                {"downtime_ms", ms(r.downtime_ns)},
                                {"total_ms", ms(r.total_ns)},
                                {"restored_as_it_arrived", r.ready.value("as_it_arrived", false)}};
    if (r.ready.contains("stdout")) {
      j["cwd"] = r.ready.value("cwd", std::string());
      j["stdout"] = r.ready.value("stdout", std::string());
      j["stderr"] = r.ready.value("stderr", std::string());
    }
    if (!r.kept_image.empty()) j["kept_image"] = r.kept_image;
    if (o.lazy && r.postcopy.is_object()) {
      nlohmann::json pc = r.postcopy;
      if (r.filled.is_object()) {
        pc["faults"] = r.filled.value("lazy_faults", std::uint64_t{0});
        pc["fill_ms"] = r.filled.value("fill_ms", 0.0);
      }
      if (!o.live) pc["dump_phases_ms"] = r.final_phases;  // with --live: live.final_phases_ms
      j["postcopy"] = pc;
    }
    if (o.live) {
      j["live"] = {{"rounds", r.rounds}, {"convergence", r.convergence}, {"final_phases_ms", r.final_phases}};
      if (r.filled.is_object()) {
        j["live"]["lazy"] = {{"pages", r.filled.value("lazy_pages", std::uint64_t{0})},
                             {"faults", r.filled.value("lazy_faults", std::uint64_t{0})},
                             {"fill_ms", r.filled.value("fill_ms", 0.0)}};
      }
    }
    PrintJson(j);
    return;
  }
  std::printf("migrated %s to %s: now pid %lld on %s", o.target.c_str(), o.to.c_str(),
              static_cast<long long>(pid), Printable(host).c_str());
  if (r.ready.contains("stdout")) {
    std::printf(", output in %s and %s", Printable(r.ready.value("stdout", std::string())).c_str(),
                Printable(r.ready.value("stderr", std::string())).c_str());
  }
  std::printf("\n  %s sent, downtime %.0f ms, total %.0f ms\n", HumanBytes(r.bytes_sent).c_str(),
              ms(r.downtime_ns), ms(r.total_ns));
  if (o.lazy && r.postcopy.is_object()) {
    std::printf("  post-copy: %s sent after it ran (%llu frames asked for first), in %.0f ms\n",
                HumanBytes(r.postcopy.value("bytes", std::uint64_t{0})).c_str(),
                static_cast<unsigned long long>(r.postcopy.value("requests", std::uint64_t{0})),
                r.postcopy.value("ms", 0.0));
  }
  if (o.live) {
    std::printf("  %zu pre-copy rounds (%s):", r.rounds.size(), r.convergence.c_str());
    for (const auto& x : r.rounds) std::printf(" %s", HumanBytes(x.value("bytes", std::uint64_t{0})).c_str());
    std::printf("; final image %s\n", HumanBytes(r.image_bytes).c_str());
    if (r.filled.is_object()) {
      std::printf("  %s filled in after it ran, in %.0f ms\n",
                  HumanBytes(r.filled.value("lazy_pages", std::uint64_t{0}) * 4096).c_str(),
                  r.filled.value("fill_ms", 0.0));
    }
  }
}

// The group TARGET names (its name, id, or its coordinator's PID), or nullopt
// when TARGET is the PID of something else.
Result<std::optional<lib::RegistrationRecord>> TargetGroup(platform::Env* env, const std::string& target,
                                                           bool numeric) {
  std::string refused;
  const std::vector<std::string> dirs = lib::UsableRuntimeDirs(env, &refused);
  if (!numeric) {
    ASSIGN_OR_RETURN(auto reg, lib::FindGroup(env, dirs, target, refused));
    return std::optional<lib::RegistrationRecord>(std::move(reg));
  }
  auto found = lib::ReadRegistration(env, dirs, std::stoll(target), refused);
  if (found.ok() && found->reg.is_group()) return std::optional<lib::RegistrationRecord>(found->reg);
  return std::optional<lib::RegistrationRecord>();
}

int Run(const MigrateOptions& o) {
  platform::Env* env = platform::Env::Default();
  bool numeric = !o.target.empty() && o.target.find_first_not_of("0123456789") == std::string::npos;
  if (numeric && !env->ProcessAlive(std::stoll(o.target)))
    return ReportError(NotFound("no process " + o.target + " is running"));
  std::optional<lib::RegistrationRecord> group;
  if (!o.tree) {
    auto g = TargetGroup(env, o.target, numeric);
    if (!g.ok()) return ReportError(g.status());
    group = std::move(g).value();
  } else if (!numeric) {
    return ReportError(
        InvalidArgument("--tree takes the PID of an unmodified process, not '" + o.target + "'"));
  }
  std::int64_t pid = group ? group->pid : std::stoll(o.target);
  bool program = false;
  if (!o.tree && !group) {
    auto found = lib::FindProgram(env, pid);
    program = found.ok();
#if !CKPT_HAVE_ENGINE
    if (!program) return ReportError(found.status());
#endif
  }
  if ((o.live || o.lazy) && (group || program)) {
    std::fprintf(stderr,
                 "ckpt: error: %s moves unmodified processes (the transparent engine); a %s "
                 "already stops only at a safepoint\n",
                 o.live ? "--live" : "--lazy", group ? "group" : "ckpt program");
    return kExitUsage;
  }
  auto conn = Connect(o);
  if (!conn.ok()) return ReportError(conn.status());
  Result<MigrateReport> r = Internal("no migration");
  std::int64_t t0 = SteadyNanos();
  if (group) {
    r = MigrateGroup(o, &*conn, *group);
  } else if (program) {
    r = MigrateProgram(o, &*conn, pid);
  } else {
#if CKPT_HAVE_ENGINE
    r = MigrateProcess(o, &*conn, pid);
#endif
  }
  if (!r.ok()) {
    Status st = WithTransportText(r.status(), &*conn);
    std::fprintf(stderr, "ckpt: error: migration to %s failed: %s\n", o.to.c_str(), st.message().c_str());
    std::fprintf(stderr, "ckpt: %s %s runs on here as before%s\n", group ? "group" : "process",
                 o.target.c_str(), st.code() == Code::kInternal ? " (check the target too)" : "");
    return kExitFailure;
  }
  r->total_ns = SteadyNanos() - t0;
  // The computation runs on the target: say so at once, then let ssh end; it
  // may not at once when the migrated program holds the remote session open.
  PrintReport(o, *r);
  std::fflush(stdout);
  std::string fin = conn->finish(5000);
  if (!fin.empty()) std::fprintf(stderr, "ckpt: warning: after the migration, %s\n", fin.c_str());
  return kExitOk;
}

}  // namespace

void AddMigrate(CLI::App& app, Runner* run) {
  auto o = std::make_shared<MigrateOptions>();
  CLI::App* c = app.add_subcommand(
      "migrate",
      "Move a running computation to another host: a ckpt program (by PID), a dependent process group (by "
      "name), or an unmodified Linux process (--tree: with its descendants). The source's copy ends only "
      "once the target's runs; any failure "
      "before leaves it running here.");
  c->add_option(
       "target", o->target,
       "PID of a ckpt program or of an unmodified process, or a group (its name, id or coordinator's PID)")
      ->required();
  c->add_option(
       "--to", o->to,
       "ssh://[user@]host[:port] (the remote runs `ckpt receive` over ssh) or ckpt://host[:port] (ckptd)")
      ->required();
  c->add_flag("--tree", o->tree, "The transparent engine, for the process and all its descendants");
  c->add_flag("--json", o->json, "Print phases, times and bytes as JSON");
  c->add_option("--compress", o->compress,
                "none or zstd: compress the image in transit (fewer bytes on slow links; costs CPU)");
  c->add_flag("--progress", o->progress, "Show transfer progress on stderr even when it is not a terminal");
  c->add_option("--ssh", o->ssh_command, "The ssh client command, split at spaces (default: ssh)");
  c->add_option("--ssh-option", o->ssh_options, "Passed to ssh as -o OPTION (repeatable)");
  auto* tls = c->add_option_group("ckpt:// (the ckptd daemon, docs/ckptd.md)");
  tls->add_option("--cert", o->cert, "This host's certificate (PEM), signed by a CA the daemon trusts");
  tls->add_option("--key", o->key, "Its private key (PEM)");
  tls->add_option("--ca", o->ca, "The CA certificate(s) the daemon's certificate must be signed by");
  tls->add_flag("--insecure-no-tls", o->insecure_no_tls,
                "Plain TCP: no encryption, no authentication (only for a daemon configured the same way)");
  c->add_option(
      "--remote-ckpt", o->remote_ckpt,
      "The ckpt command on the target, split at spaces (default: ckpt; e.g. 'wine C:\\ckpt\\ckpt.exe')");
  c->add_option("--remote-spool", o->remote_spool,
                "The target's spool directory (default: its ckpt receive's)");
  c->add_option("--program", o->programs,
                "NAME=COMMAND: how the target runs program NAME (a binary, after launcher words: "
                "'heat=wine C:\\heat.exe'); repeatable");
  c->add_option("--cwd", o->cwd, "The program's working directory on the target (default: the same path)");
  c->add_option("--output", o->output, "Where the program's NAME.out and NAME.err go on the target");
  c->add_flag("--keep", o->keep, "The target keeps the received image in its spool");
  c->add_option("--keep-image", o->keep_image, "Also keep a copy of the image here, in DIR");
  c->add_flag("--external-pipes", o->external_pipes, "As for ckpt dump");
  c->add_flag("--pidns", o->pidns, "Restore into a new PID namespace on the target");
  c->add_option("--timeout", o->timeout, "Seconds to wait for each step of the target (default 120)");
  c->add_flag("--live", o->live,
              "Live migration of an unmodified process: copy its memory in rounds while it runs (dirty pages "
              "tracked), then freeze it only for what changed since the last round");
  c->add_flag("--lazy", o->lazy,
              "Post-copy migration of an unmodified process: it runs on the target at once, its memory "
              "following from the frozen source (pages it touches first); with --live, after the "
              "pre-copy rounds. If the link fails mid-way the source's copy runs on");
  c->add_option("--max-rounds", o->max_rounds, "--live: the most pre-copy rounds (default 8)")
      ->check(CLI::Range(1, 100));
  c->add_option("--max-downtime", o->max_downtime_ms,
                "--live: stop pre-copying once the last round would take at most half this many milliseconds "
                "to send (default 50)")
      ->type_name("MS");
  c->footer("docs/migration.md describes the handoff, the transports and what happens on each failure.");
  c->callback([run, o] {
    *run = [o] {
      o->knobs = KnobsFromEnvironment(platform::Env::Default());
      return Run(*o);
    };
  });
}

}  // namespace ckpt::cli
