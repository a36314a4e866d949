// `ckpt migrate` (cmd_migrate.cc): options, the connection to the target,
// and one function per kind of work (migrate_program.cc, migrate_group.cc,
// migrate_process.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "knobs.h"
#include "lib/registration.h"
#include "net/handoff.h"
#include "net/receive.h"
#include "net/stream.h"
#include "net/wire.h"
#include "platform/env.h"
#include "util/status.h"

namespace ckpt::cli {

struct MigrateOptions {
  Knobs knobs;  // the engine's knobs and the test hooks (knobs.h)
  std::string target;
  bool tree = false;
  std::string to;
  bool json = false;
  bool progress = false;
  std::string compress = "none";
  std::string ssh_command = "ssh";
  std::vector<std::string> ssh_options;
  std::string remote_ckpt = "ckpt";
  std::string remote_spool;
  std::vector<std::string> programs;  // NAME=COMMAND for the receiving side
  std::string cwd, output;
  bool keep = false;       // the target keeps the received image
  std::string keep_image;  // the source keeps a copy here
  bool external_pipes = false;
  bool pidns = false;
  double timeout = 120;       // seconds for each step the source waits on
  std::string cert, key, ca;  // ckpt:// (mutual TLS)
  bool insecure_no_tls = false;
  // Live migration of processes (docs/migration.md): pre-copy rounds while
  // they run, then a final freeze of what changed.
  bool live = false;
  int max_rounds = 8;
  double max_downtime_ms = 50;
  // Post-copy (docs/migration.md): the process runs on the target at once;
  // its memory follows from the frozen source, pages it touches first.
  bool lazy = false;
};

// The connection to the target, whatever the transport.
struct Connection {
  std::unique_ptr<net::Stream> stream;
  std::string dest;  // as the user wrote it
  // What the transport itself said (ssh's standard error), for messages.
  std::function<std::string()> transport_text = [] { return std::string(); };
  // The transport's own end: its exit status text, "" if it ended cleanly.
  // `grace_ms` >= 0: a transport still open after that long is ended (after
  // the handoff, when a program on the target holds the session open).
  std::function<std::string(int grace_ms)> finish = [](int) { return std::string(); };
  // A new connection to the same receiver (to ask for an outcome).
  std::function<Result<std::unique_ptr<net::Stream>>()> reconnect;
};

// After COMMIT went out and DONE did not come back: asks the target, over a
// new connection, whether migration `id` was committed. "committed", "not
// committed", or an error when it cannot be learnt (then the source runs on).
Result<std::string> AskOutcome(Connection* c, const std::string& id);

// Times and sizes for --json and the summary line.
struct MigrateReport {
  std::string kind;
  nlohmann::json ready, done;
  std::uint64_t image_bytes = 0, bytes_sent = 0;
  std::int64_t checkpoint_ns = 0, transfer_ns = 0, restore_ns = 0, downtime_ns = 0, total_ns = 0;
  std::string kept_image;
  nlohmann::json rounds = nlohmann::json::array();  // --live: one object per pre-copy round
  std::string convergence;                          // --live: why the pre-copy stopped
  nlohmann::json final_phases;                      // --live: where the last dump's time went (ms)
  nlohmann::json filled;    // --live: the target's fill of the pages after it ran (null if none)
  nlohmann::json postcopy;  // --lazy: what the source sent after the target ran (null if nothing)
};

// Each returns the report, or an error naming the step and the host; on an
// error the source's copy runs on as before.
Result<MigrateReport> MigrateProgram(const MigrateOptions& o, Connection* c, std::int64_t pid);
// `reg`: the group coordinator's registration (lib/control_group.h).
Result<MigrateReport> MigrateGroup(const MigrateOptions& o, Connection* c,
                                   const lib::RegistrationRecord& reg);
#if CKPT_HAVE_ENGINE
Result<MigrateReport> MigrateProcess(const MigrateOptions& o, Connection* c, std::int64_t pid);
#endif

// HELLO, the target's ACCEPT (its refusal as an error), and --compress
// agreed: before the source is touched.
Result<nlohmann::json> Greet(const MigrateOptions& o, net::SourceHandoff* h, const nlohmann::json& hello);

class TransferProgress;

// The rest of a migration whose source is held with its image in a file (a
// program, a group) or already streamed (`image` empty): the image sent, READY, COMMIT, DONE — asking again
// when DONE is lost — and then `release(true)` ends the source's copy. On
// any failure `release(false)` lets it run on and the error says why.
// `what` names it in messages ("program", "group"); `t_hold`: when the
// source stopped (for the downtime).
Result<MigrateReport> FinishHeldMigration(const MigrateOptions& o, Connection* c, net::SourceHandoff* h,
                                          const std::string& id, const std::string& image,
                                          const std::string& what,
                                          const std::function<Status(bool exit)>& release,
                                          TransferProgress* prog, MigrateReport rep, std::int64_t t_hold);

// --keep-image DIR: the copy of the image the source keeps, written as the
// image streams out and named DIR/FILE once complete.
class KeptImage {
 public:
  // Nothing to keep without --keep-image; an error (DIR cannot be made or
  // written) is told to the target (`h`) before it is returned.
  static Result<KeptImage> Open(const MigrateOptions& o, net::SourceHandoff* h, const std::string& file);
  bool wanted() const { return file_ != nullptr; }
  platform::TempFile* file() { return file_.get(); }
  Status Append(const void* data, std::size_t size);
  // Syncs and names it; path() then says where.
  Status Commit();
  // The image came as a file instead (an older libckpt or coordinator, or a
  // group checkpoint shared with other requests): a copy of it in DIR under
  // its own name, which path() then says.
  Status KeepFile(const std::string& from);
  const std::string& path() const { return path_; }

 private:
  std::unique_ptr<platform::TempFile> file_;
  std::string path_;
};

// A random migration id (16 hex digits).
std::string NewMigrationId();
std::int64_t SteadyNanos();

}  // namespace ckpt::cli
