// Inside Receive(): one migration's state, shared by receive.cc and the
// per-kind files.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "net/receive.h"
#include "net/spool.h"
#include "platform/process.h"
#include "platform/socket.h"

namespace ckpt::net::internal {

// A restored copy started and not yet let go: it reports on a loopback
// connection (CKPT_HOLD_PORT/TOKEN) once it holds at its first safepoint.
struct HeldCopy {
  std::vector<std::string> argv;
  std::unique_ptr<platform::Listener> listener;
  std::string token;
  std::unique_ptr<platform::ChildProcess> child;  // killed with this unless released
  std::chrono::steady_clock::time_point started;
  bool ended_early = false;  // it ended before reporting (AwaitHeld)
};

struct Session {
  Session(Stream* stream, const ReceiveConfig& c) : s(stream), cfg(c) {}
  Stream* s;
  const ReceiveConfig& cfg;
  std::string host;  // this host's name, for messages and the source
  std::string step;  // what is being done, for errors
  bool reported = false;
  bool query =
      false;  // the source only asked for an outcome  // an ERROR went to the source (or came from it)
  nlohmann::json hello;
  std::string id, kind, name;
  std::string dir;  // this migration's spool directory
  std::unique_ptr<SpoolEntry> entry;
  std::string image;  // the received image
  std::uint64_t image_bytes = 0;
  std::int64_t transfer_ns = 0;
  std::uint64_t spool_free = 0;                     // at the preflight; 0 if unknown
  std::chrono::steady_clock::time_point arrived{};  // the image was whole
  // A program restored while its image arrives (StartWhileReceiving): started
  // once its META came, reading the image as the rest does.
  std::unique_ptr<HeldCopy> held;
  std::string prefix;  // the image's first bytes, until the program is started
  bool follow = false;
  // A live migration (hello "live"): pre-copy rounds come first, each into
  // DIR/round-N, the parents of the image restored.
  bool live = false;
  int rounds = 0;
  bool as_it_arrived = false;  // the copy held was started before the image was whole
  // A process image's restore, running while the image arrives.
  std::unique_ptr<ProcessRestore> proc;
  // Program and group migrations: decided in the preflight.
  std::vector<std::string> command;               // a program's; a group's: the ckpt that coordinates it
  std::vector<std::vector<std::string>> members;  // a group's member commands
  std::string cwd, ckpt_dir, out_path, err_path;

  // Tells the source why (once) and returns `st`.
  Status Fail(const Status& st);
  void Log(const std::string& m) const;
  // Waits for the source's COMMIT; an error if it gave up, went away or took too long.
  Status AwaitCommit();
  // The target's copy runs: the outcome record (unless `record` is false:
  // post-copy records it once every page came), then (test hook
  // ReceiveConfig::fault die-after-release) perhaps a SIGKILL before DONE.
  void Released(bool record = true);
  // Test hook: this process dies (as SIGKILL would) when ReceiveConfig::fault
  // is `point` ("die-before-ready": once the copy is restored and held,
  // before READY).
  void MaybeDie(const char* point) const;
};

// Process migrations (receive_process.cc): the PIDs must be free here; the
// restore starts (StartProcessRestore) once the spool file exists and runs
// while the image arrives, then RestoreProcess holds it for the COMMIT.
Status PreflightProcess(Session* s);
Status StartProcessRestore(Session* s);
Status RestoreProcess(Session* s);

Status PreflightProgram(Session* s);
// Program and process migrations on POSIX: the image is written straight
// to its spool name and read as it arrives. A program is started on it
// once its first bytes hold META (CKPT_RESUME_FOLLOW), to load its
// variables as the rest comes: StartWhileReceiving is called by TakeImage
// after each DATA frame.
bool FollowWanted(const Session& s);
Status StartWhileReceiving(Session* s, const void* data, std::size_t size);
Status RunProgram(Session* s);
Status PreflightGroup(Session* s);
Status RunGroup(Session* s);

// Shared by the kinds (receive_program.cc):
bool IsDir(const std::string& p);
// True if `cmd` names an executable file (a path, or a name on PATH).
bool Runnable(const std::string& cmd);
// The working directory, checkpoint directory and output files of s->name.
Status PreflightPlace(Session* s);
// Starts argv (its output in s->out_path / err_path, in s->cwd, in a session
// of its own) with `env` and the handoff port (CKPT_HOLD_PORT/TOKEN), waits
// for it to report held, says READY, and lets it run ('g') after COMMIT; if
// anything fails first it ends without running on.
Status RunHeld(Session* s, const std::vector<std::string>& argv, std::vector<std::string> env);
// RunHeld in two steps: start the copy (s->held), then wait for its report.
Status StartHeld(Session* s, const std::vector<std::string>& argv, std::vector<std::string> env);
Status AwaitHeld(Session* s);

}  // namespace ckpt::net::internal
