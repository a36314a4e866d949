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

struct DirEntry {
  std::string name;
  bool is_dir = false;
  std::uint64_t size = 0;
};

// What the checkpoint trigger reports when a request arrives from outside.
// Bit flags, OR-ed into the session's pending word.
enum class Request : int { kNone = 0, kCheckpoint = 1, kCheckpointAndExit = 3 };

class Env {
 public:
  virtual ~Env() = default;
  static Env* Default();

  // Files.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<image::RandomAccessSource>> NewRandomAccessFile(const std::string& path) = 0;
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
  // A per-user directory for small runtime files (registrations).
  virtual std::string RuntimeDir() = 0;
  virtual std::string GetEnv(const std::string& name) = 0;
  // Wall-clock time in nanoseconds since the Unix epoch.
  virtual std::int64_t NowNanos() = 0;

  // Checkpoint requests from outside: installs a handler (a signal on POSIX,
  // named events and Ctrl-Break on Windows) that ORs a Request into *slot
  virtual Status InstallCheckpointTrigger(std::atomic<int>* slot) = 0;
  virtual void RemoveCheckpointTrigger() = 0;
  // Asks process `pid` (running a ckpt session) to checkpoint.
  virtual Status SendCheckpointRequest(std::int64_t pid, Request request) = 0;
};

// Helpers built on Env.
Result<std::string> ReadFileToString(Env* env, const std::string& path);
// Writes `data` to path.tmp, renames it over `path`; with `durable`, syncs
// the file before and the directory after the rename.
Status WriteFileAtomic(Env* env, const std::string& path, const std::string& data, bool durable = true);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace ckpt::platform
