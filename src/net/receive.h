// The receiving side of a migration (docs/migration.md), shared by
// `ckpt receive` (what ssh runs on the target) and the daemon `ckptd`: takes
// an image from a Stream into a spool directory, checking every frame as it
// arrives, restores it held, tells the source, and lets it run only when the
// source commits. Whatever fails before that leaves nothing running here
// and no spool entry.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "net/stream.h"
#include "util/status.h"

namespace ckpt::net {

// A restore of the transparent engine's image that runs while the image is
// still arriving (in a process of its own): it sets the tree up once every
// model has come, fills each member's pages as they arrive, and holds the
// rebuilt tree until Release(). Destroying it before Release() undoes the
// restore (nothing restored is left running, nothing it created is left).
class ProcessRestore {
 public:
  virtual ~ProcessRestore() = default;
  // Does not wait: an error if the restore has failed already.
  virtual Status Check() = 0;
  // Waits (the image complete) until the tree is rebuilt and held: its root's PID.
  virtual Result<std::int64_t> AwaitHeld() = 0;
  // Lets the held tree run; facts for the source (pid, members, ...;
  // "lazy": true when its pages are still being filled).
  virtual Result<nlohmann::json> Release() = 0;
  // Post-copy, after DONE went out: the connection is the restore's until
  // it reports the fill (AwaitFilled).
  virtual Status HandOver() { return Status::Ok(); }
  // After a lazy Release(): waits until every page is in (facts of the fill).
  virtual Result<nlohmann::json> AwaitFilled() { return nlohmann::json::object(); }
};

// Where a process image arrives: DIR/process.ckpt, written by this process
// and complete once `complete_marker` exists; at most `limit` bytes.
struct ArrivingImage {
  std::string dir, complete_marker;
  std::uint64_t limit = 0;
  // Post-copy (the source's HELLO says `postcopy`): the connection's
  // descriptors, which the restore reads and writes once handed over.
  int conn_read_fd = -1, conn_write_fd = -1;
};

// Starts the restore of an arriving process image (the source's HELLO asks
// for a new PID namespace or not). Set by builds that have the engine.
using ProcessRestorer = std::function<Result<std::unique_ptr<ProcessRestore>>(const ArrivingImage& image,
                                                                              const nlohmann::json& hello)>;

struct ReceiveConfig {
  std::string spool;  // where images land, one directory per migration
  // Program name -> the command that runs it here (launcher words, then the
  // binary): `--program heat=wine heat.exe`, the daemon's program map.
  std::map<std::string, std::vector<std::string>> programs;
  // No entry for a program: run the binary the image records, if it exists
  // here (ckpt receive over ssh: the user's own account). The daemon runs
  // only what its map names.
  bool run_recorded_programs = true;
  // What this peer may send: "program", "process", "group".
  std::vector<std::string> kinds = {"program", "process", "group"};
  std::string cwd;             // working directory for programs, overriding the source's
  std::string output;          // where NAME.out and NAME.err go (default: the working directory)
  bool keep = false;           // keep the received image in the spool after the handoff
  std::string peer;            // who sends, for messages ("ssh", "CN=...")
  int commit_timeout_s = 600;  // how long a restored copy is held waiting for the source
  ProcessRestorer restore_process;
  std::function<void(const std::string&)> log;  // progress messages (stderr)
  // Test hook: "die-before-ready" or "die-after-release" kills this process
  // there (`ckpt receive` takes it from CKPT_RECEIVE_FAULT). Empty: none.
  std::string fault;
};

// Runs one migration's receiving side to its end. The error (also sent to
// the source) names the step.
Status Receive(Stream* s, const ReceiveConfig& cfg);

// The default spool: $CKPT_SPOOL, else $XDG_STATE_HOME/ckpt/spool, else
// ~/.local/state/ckpt/spool (Windows: %LOCALAPPDATA%\ckpt\spool).
std::string DefaultSpool();

}  // namespace ckpt::net
