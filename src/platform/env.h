// Env: the one interface between ckpt's portable code and the operating
// system (files, processes, checkpoint triggers). posix_env.cc and
// windows_env.cc implement it; CMake picks one. Tests wrap an Env to inject
// faults (a full disk, a failing rename). Env::Default() is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "image/io.h"
#include "util/status.h"

namespace ckpt::platform {

class WritableFile : public image::Sink {
 public:
  // Flushes buffers and makes the contents durable (fsync / FlushFileBuffers).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
  // For a writer that fills part of the file through the OS handle itself
  // (the engine's in-place page dump): writes out buffered bytes and returns
  // the handle (a file descriptor on POSIX); NotSupported where there is none.
  virtual Result<std::intptr_t> FlushForDirectWrites() {
    return NotSupported("this file cannot be written directly");
  }
  // The `n` bytes from Position() on were written directly: appends go on
  // after them.
  virtual Status SkipDirectlyWritten(std::uint64_t /*n*/) {
    return NotSupported("this file cannot be written directly");
  }
  // Called before the first Append: the file is large and written once (a
  // program's image), so whole blocks may go to the disk past the page
  // cache (Linux: O_DIRECT). Best effort; nothing where it cannot.
  virtual void BypassPageCache() {}
};

// A WritableFile with a 1 MiB buffer; appends of a buffer's size or more go
// straight to WriteRaw. Subclasses do the OS writes.
class BufferedWritableFile : public WritableFile {
 public:
  Status Append(const void* data, std::size_t size) override;
  std::uint64_t Position() const override { return pos_; }

 protected:
  BufferedWritableFile();
  Status FlushBuffer();
  void AdvancePosition(std::uint64_t n) { pos_ += n; }
  virtual Status WriteRaw(const char* p, std::size_t n) = 0;

 private:
  static constexpr std::size_t kBufSize = 1 << 20;
  std::unique_ptr<char[]> buf_;
  std::size_t fill_ = 0;
  std::uint64_t pos_ = 0;
};

// A new file written under no name, or a random temporary one, in its target
// directory, until Commit gives it its final name. It is never an existing
// file and never reached through a symbolic link (O_TMPFILE, or
// O_CREAT|O_EXCL|O_NOFOLLOW; CREATE_NEW with FILE_FLAG_OPEN_REPARSE_POINT on
// Windows). Destroyed without a successful Commit, it is removed.
class TempFile : public WritableFile {
 public:
  // Flushes, gives the file the name `path` (in the directory it was made
  // in) and closes it. With `replace`, an existing `path` is atomically
  // replaced; without, nothing is replaced: returns false if `path` exists
  // (the data stays unnamed, and is dropped with this object). Call Sync()
  // first for durability, and Env::SyncDir after.
  virtual Result<bool> Commit(const std::string& path, bool replace) = 0;
  // Like Commit(path, true), but a previous file at `path` is swapped with
  // this one in one step (Linux renameat2 RENAME_EXCHANGE) and is then at
  // TempPath(), for the caller to remove when convenient (returns true) —
  // a rename over a large file can make the file system write the new one
  // back and free the old one on the spot. Without a previous file, or where
  // the file system cannot exchange (and on Windows), a replacing rename
  // (returns false).
  virtual Result<bool> CommitExchange(const std::string& path) = 0;
  // A name for messages ("DIR/(unnamed temporary file)" or the temporary path).
  virtual const std::string& TempPath() const = 0;
};

// The permission bits images are created with unless told otherwise: the
// owner reads and writes, nobody else (images hold a process's memory).
inline constexpr unsigned kDefaultImageMode = 0600;
// An image mode must be permission bits only (at most 0777) and let the
// owner read and write.
Status CheckImageMode(unsigned mode);
// Parses an octal file mode ("0640", "640") for --image-mode options and
// checks it with CheckImageMode.
Result<unsigned> ParseFileMode(const std::string& text);

struct DirEntry {
  std::string name;
  bool is_dir = false;
  std::uint64_t size = 0;
};

// The bits of a hold (checkpoint, then wait inside the safepoint for a
// decision) and of the two decisions that end it: continue, or exit with
// status 75 without writing another image.
inline constexpr int kRequestHold = 128;
inline constexpr int kRequestRelease = 256;
inline constexpr int kRequestReleaseExit = 512;

// What the checkpoint trigger reports when a request arrives from outside.
// Bit flags, OR-ed into the session's pending word. A hold request first
// clears both decision bits (a decision applies to the hold that follows it
// at most), so a release sent after a hold request, before the program
// reached its safepoint, cancels it: the program then checkpoints and
// continues at once.
enum class Request : int {
  kNone = 0,
  kCheckpoint = 1,
  kCheckpointAndExit = 3,
  kCheckpointAndHold = 1 | kRequestHold,
  kRelease = kRequestRelease,
  kReleaseAndExit = kRequestReleaseExit,
};
// Also OR-ed in by the trigger with every checkpoint request, so the session
// knows a requester (`ckpt checkpoint`) may be waiting for the outcome.
inline constexpr int kRequestFromOutside = 32;

class Env {
 public:
  virtual ~Env() = default;
  static Env* Default();

  // Files.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<image::RandomAccessSource>> NewRandomAccessFile(const std::string& path) = 0;
  // A new file in `dir` that becomes visible only when committed (TempFile).
  // `mode`: POSIX permission bits, applied exactly (umask aside; Windows:
  // the file inherits the directory's ACL). A temporary name, where one is
  // needed, is PREFIX.<16 random hex digits>.tmp; the writer holds a lock on
  // it that RemoveStaleTempFiles respects.
  virtual Result<std::unique_ptr<TempFile>> NewTempFile(const std::string& dir, const std::string& prefix,
                                                        unsigned mode = kDefaultImageMode) = 0;
  // Removes temporary files PREFIX*.<16 hex>.tmp in `dir` that belong to this
  // user and that no live writer holds (left by a process that was killed).
  virtual void RemoveStaleTempFiles(const std::string& dir, const std::string& prefix) = 0;
  // Atomically replaces `to` with `from`.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Makes a rename inside `dir` durable (no-op where the OS has no such call).
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  virtual Status CreateDirs(const std::string& path) = 0;
  virtual Result<std::vector<DirEntry>> ListDir(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  virtual bool IsDirectory(const std::string& path) = 0;

  // Processes and the host.
  virtual std::int64_t ProcessId() = 0;
  virtual bool ProcessAlive(std::int64_t pid) = 0;
  // An opaque number that changes when a PID is reused (Linux: start time in
  // clock ticks since boot; Windows: creation FILETIME); 0 if unknown.
  virtual std::uint64_t ProcessStartTime(std::int64_t pid) = 0;
  virtual std::string HostName() = 0;
  virtual std::string OsName() = 0;  // "linux", "windows"
  virtual std::string ExecutablePath() = 0;
  // A per-user directory for small runtime files (registrations):
  // $CKPT_RUNTIME_DIR; else $XDG_RUNTIME_DIR/ckpt where $XDG_RUNTIME_DIR is
  // a directory this user owns; else /tmp/ckpt-UID (Windows: %TEMP%\ckpt).
  virtual std::string RuntimeDir() = 0;
  // Where registrations may be, RuntimeDir() first: also /tmp/ckpt-UID when
  // RuntimeDir() is under $XDG_RUNTIME_DIR (a program started without it,
  // by cron say, registers there).
  virtual std::vector<std::string> RuntimeDirs() = 0;
  // Checks that `dir` (one of RuntimeDirs()) is safe for this user's
  // runtime files, first creating it (mode 0700) with `create`: a directory,
  // not a symbolic link, owned by this user and with no access for group or
  // others ($CKPT_RUNTIME_DIR, chosen by the user: no write access for
  // them). NotFound if it does not exist (and `create` is false); otherwise
  // a FailedPrecondition naming what is wrong. Windows: refuses a reparse point.
  virtual Status SecureRuntimeDir(const std::string& dir, bool create) = 0;
  // Reads a small file (at most `max_size` bytes) that only this user can
  // have written: refuses a symbolic link, a special file, a file owned by
  // another user or writable by group or others (Windows: a reparse point).
  virtual Result<std::string> ReadPrivateFile(const std::string& path, std::size_t max_size) = 0;
  // `path` made absolute against the current directory.
  virtual std::string AbsolutePath(const std::string& path) = 0;
  virtual std::string GetEnv(const std::string& name) = 0;
  // Wall-clock time in nanoseconds since the Unix epoch.
  virtual std::int64_t NowNanos() = 0;

  // Checkpoint requests from outside: installs a handler (a signal on POSIX,
  // named events and Ctrl-Break on Windows) that ORs a Request into *slot
  virtual Status InstallCheckpointTrigger(std::atomic<int>* slot) = 0;
  virtual void RemoveCheckpointTrigger() = 0;
  // Asks process `pid` (running a ckpt session) to checkpoint.
  virtual Status SendCheckpointRequest(std::int64_t pid, Request request) = 0;
  // The process that sent the last hold request to this process's trigger
  // (POSIX: si_pid of the signal; Windows: recorded by the sender in a
  // named mapping), or 0 when it cannot be known.
  virtual std::int64_t HoldRequester() = 0;
  // Removes an environment variable from this process (children started
  // after it do not inherit it).
  virtual void UnsetEnv(const std::string& name) = 0;
};

// An Env that forwards every call to another (not owned): derive from it and
// override only what changes, as fault-injecting Envs in tests do. A new
// Env method needs one line here and none in the wrappers.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    return target_->NewWritableFile(p);
  }
  Result<std::unique_ptr<image::RandomAccessSource>> NewRandomAccessFile(const std::string& p) override {
    return target_->NewRandomAccessFile(p);
  }
  Result<std::unique_ptr<TempFile>> NewTempFile(const std::string& dir, const std::string& prefix,
                                                unsigned mode = kDefaultImageMode) override {
    return target_->NewTempFile(dir, prefix, mode);
  }
  void RemoveStaleTempFiles(const std::string& d, const std::string& p) override {
    target_->RemoveStaleTempFiles(d, p);
  }
  Status RenameFile(const std::string& a, const std::string& b) override { return target_->RenameFile(a, b); }
  Status SyncDir(const std::string& d) override { return target_->SyncDir(d); }
  Status RemoveFile(const std::string& p) override { return target_->RemoveFile(p); }
  Status CreateDirs(const std::string& p) override { return target_->CreateDirs(p); }
  Result<std::vector<DirEntry>> ListDir(const std::string& p) override { return target_->ListDir(p); }
  bool FileExists(const std::string& p) override { return target_->FileExists(p); }
  bool IsDirectory(const std::string& p) override { return target_->IsDirectory(p); }
  std::int64_t ProcessId() override { return target_->ProcessId(); }
  bool ProcessAlive(std::int64_t pid) override { return target_->ProcessAlive(pid); }
  std::uint64_t ProcessStartTime(std::int64_t pid) override { return target_->ProcessStartTime(pid); }
  std::string HostName() override { return target_->HostName(); }
  std::string OsName() override { return target_->OsName(); }
  std::string ExecutablePath() override { return target_->ExecutablePath(); }
  std::string RuntimeDir() override { return target_->RuntimeDir(); }
  std::vector<std::string> RuntimeDirs() override { return target_->RuntimeDirs(); }
  Status SecureRuntimeDir(const std::string& d, bool create) override {
    return target_->SecureRuntimeDir(d, create);
  }
  Result<std::string> ReadPrivateFile(const std::string& p, std::size_t max) override {
    return target_->ReadPrivateFile(p, max);
  }
  std::string AbsolutePath(const std::string& p) override { return target_->AbsolutePath(p); }
  std::string GetEnv(const std::string& n) override { return target_->GetEnv(n); }
  std::int64_t NowNanos() override { return target_->NowNanos(); }
  Status InstallCheckpointTrigger(std::atomic<int>* slot) override {
    return target_->InstallCheckpointTrigger(slot);
  }
  void RemoveCheckpointTrigger() override { target_->RemoveCheckpointTrigger(); }
  Status SendCheckpointRequest(std::int64_t pid, Request r) override {
    return target_->SendCheckpointRequest(pid, r);
  }
  std::int64_t HoldRequester() override { return target_->HoldRequester(); }
  void UnsetEnv(const std::string& n) override { target_->UnsetEnv(n); }

 private:
  Env* target_;
};

// Helpers built on Env.
Result<std::string> ReadFileToString(Env* env, const std::string& path);
// Writes `data` to a new temporary file (Env::NewTempFile, mode 0600) and
// renames it over `path`; with `durable`, syncs the file before and the
// directory after the rename.
Status WriteFileAtomic(Env* env, const std::string& path, const std::string& data, bool durable = true);
// 16 random hex digits (temporary file names).
std::string RandomHex16();
// True if `name` is PREFIX<anything>.<16 hex digits>.tmp (a NewTempFile name).
bool IsTempFileName(const std::string& name, const std::string& prefix);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
std::string JoinPath(const std::string& dir, const std::string& name);

// A file another process is still writing (a migration's image, restored as
// it arrives). Reads wait for their bytes; the file is complete once
// `complete_marker` exists. A read fails, instead of waiting on, where the
// complete file is shorter (Corruption), where process `writer_pid` ended
// first, or where the file has not grown for `stall_timeout_ms`.
struct FollowSpec {
  std::string complete_marker;
  std::int64_t writer_pid = 0;
  int stall_timeout_ms = 300 * 1000;
};
// NotSupported on Windows (the receiver there stores the whole image first).
Result<std::unique_ptr<image::RandomAccessSource>> OpenFollowedFile(const std::string& path,
                                                                    const FollowSpec& spec);

}  // namespace ckpt::platform
