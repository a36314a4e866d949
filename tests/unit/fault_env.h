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

class FaultEnv : public platform::EnvWrapper {
 public:
  explicit FaultEnv(platform::Env* base = platform::Env::Default()) : EnvWrapper(base) {}

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
    auto f = target()->NewTempFile(dir, prefix, mode);
    if (!f.ok()) return f.status();
    return std::unique_ptr<platform::TempFile>(new Temp(std::move(f).value(), this));
  }
  Result<std::unique_ptr<platform::WritableFile>> NewWritableFile(const std::string& p) override {
    auto f = target()->NewWritableFile(p);
    if (!f.ok()) return f.status();
    return std::unique_ptr<platform::WritableFile>(new File(std::move(f).value(), this));
  }
  Status RenameFile(const std::string& a, const std::string& b) override {
    if (fail_rename) return IoError("rename (injected) " + a + ": Input/output error");
    return target()->RenameFile(a, b);
  }
};

}  // namespace ckpt::testing
