// An Env that forwards to the real one but can fail writes after a byte
// budget (a full disk) or fail renames — for tests of "a failed checkpoint
// leaves the previous image intact". Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "platform/env.h"

namespace ckpt::testing {

class FaultEnv : public platform::Env {
 public:
  explicit FaultEnv(platform::Env* base = platform::Env::Default()) : base_(base) {}

  // Writes fail (like ENOSPC) once this many bytes went to files in total; -1: never.
  std::int64_t write_budget = -1;
  bool fail_rename = false;  // RenameFile and TempFile::Commit fail
  // Called before each TempFile::Commit with the final path (a test can make
  // another writer take the name first).
  std::function<void(const std::string&)> before_commit;

  class File : public platform::WritableFile {
   public:
    File(std::unique_ptr<platform::WritableFile> f, FaultEnv* env) : f_(std::move(f)), env_(env) {}
    Status Append(const void* d, std::size_t n) override {
      RETURN_IF_ERROR(Charge(n));
      return f_->Append(d, n);
    }
    Status Charge(std::size_t n) {
      if (env_->write_budget >= 0) {
        if (static_cast<std::int64_t>(n) > env_->write_budget) {
          env_->write_budget = 0;
          return IoError("write (injected): No space left on device");
        }
        env_->write_budget -= static_cast<std::int64_t>(n);
      }
      return Status::Ok();
    }
    FaultEnv* env() const { return env_; }
    std::uint64_t Position() const override { return f_->Position(); }
    Status Sync() override { return f_->Sync(); }
    Status Close() override { return f_->Close(); }

   private:
    std::unique_ptr<platform::WritableFile> f_;
    FaultEnv* env_;
  };

  class Temp : public platform::TempFile {
   public:
    Temp(std::unique_ptr<platform::TempFile> f, FaultEnv* env) : f_(std::move(f)), budget_(nullptr, env) {}
    Status Append(const void* d, std::size_t n) override {
      RETURN_IF_ERROR(budget_.Charge(n));
      return f_->Append(d, n);
    }
    std::uint64_t Position() const override { return f_->Position(); }
    Status Sync() override { return f_->Sync(); }
    Status Close() override { return f_->Close(); }
    const std::string& TempPath() const override { return f_->TempPath(); }
    Result<bool> CommitExchange(const std::string& path) override {
      if (budget_.env()->fail_rename)
        return IoError("rename (injected) " + f_->TempPath() + ": Input/output error");
      return f_->CommitExchange(path);
    }
    Result<bool> Commit(const std::string& path, bool replace) override {
      if (budget_.env()->before_commit) budget_.env()->before_commit(path);
      if (budget_.env()->fail_rename)
        return IoError("rename (injected) " + f_->TempPath() + ": Input/output error");
      return f_->Commit(path, replace);
    }

   private:
    std::unique_ptr<platform::TempFile> f_;
    File budget_;
  };

  Result<std::unique_ptr<platform::TempFile>> NewTempFile(const std::string& dir, const std::string& prefix,
                                                          unsigned mode) override {
    auto f = base_->NewTempFile(dir, prefix, mode);
    if (!f.ok()) return f.status();
    return std::unique_ptr<platform::TempFile>(new Temp(std::move(f).value(), this));
  }
  void RemoveStaleTempFiles(const std::string& d, const std::string& p) override {
    base_->RemoveStaleTempFiles(d, p);
  }
  std::vector<std::string> RuntimeDirs() override { return base_->RuntimeDirs(); }
  Status SecureRuntimeDir(const std::string& d, bool create) override {
    return base_->SecureRuntimeDir(d, create);
  }
  Result<std::string> ReadPrivateFile(const std::string& p, std::size_t max) override {
    return base_->ReadPrivateFile(p, max);
  }
  std::string AbsolutePath(const std::string& p) override { return base_->AbsolutePath(p); }

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
  std::int64_t HoldRequester() override { return base_->HoldRequester(); }
  void UnsetEnv(const std::string& n) override { base_->UnsetEnv(n); }

 private:
  platform::Env* base_;
};

}  // namespace ckpt::testing
