// An Env that forwards to the real one but can fail writes after a byte
// budget (a full disk) or fail renames — for tests of "a failed checkpoint
// leaves the previous image intact". Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "platform/env.h"

namespace ckpt::testing {

class FaultEnv : public platform::Env {
 public:
  explicit FaultEnv(platform::Env* base = platform::Env::Default()) : base_(base) {}

  // Writes fail (like ENOSPC) once this many bytes went to files in total; -1: never.
  std::int64_t write_budget = -1;
  bool fail_rename = false;

  class File : public platform::WritableFile {
   public:
    File(std::unique_ptr<platform::WritableFile> f, FaultEnv* env) : f_(std::move(f)), env_(env) {}
    Status Append(const void* d, std::size_t n) override {
      if (env_->write_budget >= 0) {
        if (static_cast<std::int64_t>(n) > env_->write_budget) {
          env_->write_budget = 0;
          return IoError("write (injected): No space left on device");
        }
        env_->write_budget -= static_cast<std::int64_t>(n);
      }
      return f_->Append(d, n);
    }
    std::uint64_t Position() const override { return f_->Position(); }
    Status Sync() override { return f_->Sync(); }
    Status Close() override { return f_->Close(); }

   private:
    std::unique_ptr<platform::WritableFile> f_;
    FaultEnv* env_;
  };

  Result<std::unique_ptr<platform::WritableFile>> NewWritableFile(const std::string& p) override {
    auto f = base_->NewWritableFile(p);
    if (!f.ok()) return f.status();
    return std::unique_ptr<platform::WritableFile>(new File(std::move(f).value(), this));
  }
  Result<std::unique_ptr<image::RandomAccessSource>> NewRandomAccessFile(const std::string& p) override {
    return base_->NewRandomAccessFile(p);
  }
  Status RenameFile(const std::string& a, const std::string& b) override {
    if (fail_rename) return IoError("rename (injected) " + a + ": Input/output error");
    return base_->RenameFile(a, b);
  }
  Status SyncDir(const std::string& d) override { return base_->SyncDir(d); }
  Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }
  Status CreateDirs(const std::string& p) override { return base_->CreateDirs(p); }
  Result<std::vector<platform::DirEntry>> ListDir(const std::string& p) override { return base_->ListDir(p); }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  bool IsDirectory(const std::string& p) override { return base_->IsDirectory(p); }
  std::int64_t ProcessId() override { return base_->ProcessId(); }
  bool ProcessAlive(std::int64_t pid) override { return base_->ProcessAlive(pid); }
  std::uint64_t ProcessStartTime(std::int64_t pid) override { return base_->ProcessStartTime(pid); }
  std::string HostName() override { return base_->HostName(); }
  std::string OsName() override { return base_->OsName(); }
  std::string ExecutablePath() override { return base_->ExecutablePath(); }
  std::string RuntimeDir() override { return base_->RuntimeDir(); }
  std::string GetEnv(const std::string& n) override { return base_->GetEnv(n); }
  std::int64_t NowNanos() override { return base_->NowNanos(); }
  Status InstallCheckpointTrigger(std::atomic<int>* slot) override {
    return base_->InstallCheckpointTrigger(slot);
  }
  void RemoveCheckpointTrigger() override { base_->RemoveCheckpointTrigger(); }
  Status SendCheckpointRequest(std::int64_t pid, platform::Request r) override {
    return base_->SendCheckpointRequest(pid, r);
  }

 private:
  platform::Env* base_;
};

}  // namespace ckpt::testing
