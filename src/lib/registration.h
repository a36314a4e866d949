// The registration file of a running ckpt session: RUNTIME_DIR/<pid>.json,
// which `ckpt checkpoint PID` reads to find the session, send it a request
// and wait for the new image. It records the process start time so that a
// stale file never leads to signalling an unrelated process that reused the
// PID, and counts checkpoints written and failed so a requester sees every
// outcome, even a failure identical to the previous one.
//
// The runtime directory is checked before use (Env::SecureRuntimeDir: this
// user's, private, not a link); files are written through Env::NewTempFile
// (never an existing file or a link). The file is removed when the session
// ends for any reason the library sees: its destructor, and an atexit
// handler for std::exit (the program's, or the library's own exits 3 and
// 75). After a checkpoint-and-exit asked from outside it stays, marked
// "exited", for the requester to read; whoever next looks at the directory
// (a starting session, `ckpt checkpoint`) removes registrations of
// processes that are gone. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "platform/env.h"

namespace ckpt::lib {

// One member's command as a group coordinator publishes it.
struct MemberCommand {
  std::string program;              // the member's executable (empty until it has joined)
  std::vector<std::string> launch;  // the launcher words before it (wine, qemu-s390x), if any
  std::vector<std::string> args;
};

// The one schema of a registration file, RUNTIME_DIR/<pid>.json: written by
// a session (kind "program", Registration::Publish) and by a group
// coordinator (kind "group"), read by every requester (lib/control.h). JSON,
// one object; byte strings are written losslessly (util/json_bytes.h); keys a
// reader does not know are ignored, keys it misses keep the defaults below.
struct RegistrationRecord {
  std::int64_t pid = 0;
  std::string kind = "program";  // "program" or "group"
  std::string dir;               // the image directory
  std::string cwd;               // the working directory, absolute
  std::uint64_t generation = 0;  // checkpoints written
  std::string last_image;        // absolute path
  // A program's.
  std::string program;           // its name (image name prefix)
  std::string exe;               // its executable (as the OS, or qemu-user, reports it)
  std::string platform;          // PlatformTag() of the writer
  std::uint64_t start_time = 0;  // Env::ProcessStartTime of the writer, 0 unknown
  bool exited = false;           // the process has ended after writing last_image
  bool held = false;             // waiting in a safepoint for a hold's decision (lib/hold.h)
  std::uint64_t failures = 0;    // checkpoints that failed
  bool has_failures = false;     // the writer counts failures (older ones publish only last_error)
  std::string last_error;
  // A group coordinator's (the port and secret make the file the key to the group).
  std::string group;  // its name
  std::string id;     // its id
  int port = 0;       // the coordinator's loopback port
  std::string secret_hex;
  int members = 0;
  std::vector<MemberCommand> commands;
  double every = 0;     // seconds between checkpoints, 0 none
  double timeout = 30;  // the members' checkpoint timeout
  int keep = 2;         // images kept
  std::string codec = "none";

  bool is_group() const { return kind == "group"; }
  const std::string& name() const { return is_group() ? group : program; }
};

// The file's text (one line of JSON).
std::string EncodeRegistration(const RegistrationRecord& r);
// A registration read from `path`; Corruption naming `path` when it is not a
// JSON object or a known key has the wrong type.
Result<RegistrationRecord> DecodeRegistration(const std::string& path, std::string_view data);

struct RegistrationState {
  std::uint64_t generation = 0;  // checkpoints written
  std::uint64_t failures = 0;    // checkpoints that failed
  std::string last_image;        // absolute path
  std::string last_error;
  bool exited = false;  // the process has ended after writing last_image
  bool held = false;    // waiting in a safepoint for a hold's decision (lib/hold.h)
  std::string cwd;      // the working directory, absolute
};

class Registration {
 public:
  Registration(platform::Env* env, std::string program, const std::string& dir);
  ~Registration();
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // Writes the file. The first call checks (and makes) the runtime directory
  // and collects stale registrations there; if the directory is refused,
  // every call returns that error and nothing is written.
  Status Publish(const RegistrationState& state);
  // The file stays when this object goes (after a checkpoint-and-exit that
  // a requester waits for).
  void KeepAfterExit();
  const std::string& path() const { return path_; }
  // Where process `pid`'s registration is in this process's RuntimeDir().
  static std::string PathFor(platform::Env* env, std::int64_t pid);

  // Largest registration file read (a guard against a huge planted file).
  static constexpr std::size_t kMaxFileSize = 1 << 20;

 private:
  platform::Env* env_;
  std::string program_;
  std::string dir_;
  std::string exe_;  // the program's executable (as the OS, or qemu-user, reports it)
  std::string path_;
  std::uint64_t start_time_ = 0;
  std::int64_t pid_ = 0;
  Status dir_status_ = Internal("not yet published");
  bool checked_ = false;
  bool written_ = false;
  bool keep_ = false;
};

// True if a registration's recorded start time is that of the process that
// now runs with its PID (`actual`, Env::ProcessStartTime). Equal, or a little
// later: qemu-user reports to the program it runs a start time of its own,
// taken as it starts, up to a few clock ticks after the kernel's. A process
// that reused the PID started after the registration was written, so it is
// never taken for the writer.
bool SameStartTime(std::uint64_t recorded, std::uint64_t actual);

// "<dir>/<pid>.json".
std::string RegistrationPath(const std::string& runtime_dir, std::int64_t pid);
// True (and *pid set) if `name` is a registration's file name, "<pid>.json".
bool ParseRegistrationName(const std::string& name, std::int64_t* pid);
// The registration file at `path`, read owner-only and decoded.
Result<RegistrationRecord> ReadRegistrationFile(platform::Env* env, const std::string& path);
// False for a registration written on another OS: a Windows program's PID
// (under Wine, sharing the directory) means nothing to a Linux process, and
// the other way round.
bool WrittenOnThisOs(const RegistrationRecord& r);
// Removes, in `runtime_dir`, registrations of processes that no longer run
// (or whose PID now belongs to another process) and stale temporary files.
// Keeps `except_pid`'s.
void CollectStaleRegistrations(platform::Env* env, const std::string& runtime_dir, std::int64_t except_pid);

}  // namespace ckpt::lib
