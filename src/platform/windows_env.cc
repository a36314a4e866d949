// Env for Windows (MinGW-w64 builds, tested under Wine). Every OS error
// becomes a Status that names the operation, the object and the system text.
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "platform/env.h"
#include "platform/windows_util.h"

namespace ckpt::platform {

std::wstring Widen(const std::string& s) {
  if (s.empty()) return L"";
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  std::wstring w(static_cast<std::size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), w.data(), n);
  return w;
}

std::string Narrow(const std::wstring& w) {
  if (w.empty()) return "";
  int n = WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0, nullptr, nullptr);
  std::string s(static_cast<std::size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), s.data(), n, nullptr, nullptr);
  return s;
}

Status WindowsError(const std::string& op, const std::string& object, unsigned long err) {
  char* text = nullptr;
  FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                 nullptr, err, 0, reinterpret_cast<char*>(&text), 0, nullptr);
  std::string reason = text != nullptr ? text : "unknown error";
  if (text != nullptr) LocalFree(text);
  while (!reason.empty() && (reason.back() == '\n' || reason.back() == '\r' || reason.back() == '.'))
    reason.pop_back();
  std::string m = op;
  if (!object.empty()) m += " " + object;
  m += ": " + reason + " (error " + std::to_string(err) + ")";
  if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) return NotFound(m);
  return IoError(m);
}

// MoveFileEx onto a file that another process has open fails (access
// denied, sharing violation) even when it was opened with FILE_SHARE_DELETE:
// a registration replaced while `ckpt checkpoint PID` reads it stayed at its
// old generation, and the command reported "exited without writing a
// checkpoint" for a program that had written one (hetero_windows). Readers
// hold such files for moments: retry for up to 5 s.
bool MoveFileReplacing(const std::wstring& from, const std::wstring& to) {
  for (int waited_ms = 0;; waited_ms += 10) {
    if (MoveFileExW(from.c_str(), to.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
      return true;
    DWORD e = GetLastError();
    if ((e != ERROR_ACCESS_DENIED && e != ERROR_SHARING_VIOLATION && e != ERROR_LOCK_VIOLATION) ||
        waited_ms >= 5000)
      return false;
    Sleep(10);
  }
}

namespace {

class WinWritableFile final : public BufferedWritableFile {
 public:
  WinWritableFile(std::string path, HANDLE h) : path_(std::move(path)), h_(h) {}
  ~WinWritableFile() override {
    if (h_ != INVALID_HANDLE_VALUE) CloseHandle(h_);
  }
  Status Sync() override {
    RETURN_IF_ERROR(FlushBuffer());
    if (!FlushFileBuffers(h_)) return WindowsError("flush", path_, GetLastError());
    return Status::Ok();
  }
  Status Close() override {
    Status st = FlushBuffer();
    if (h_ != INVALID_HANDLE_VALUE && !CloseHandle(h_) && st.ok())
      st = WindowsError("close", path_, GetLastError());
    h_ = INVALID_HANDLE_VALUE;
    return st;
  }

 private:
  Status WriteRaw(const char* p, std::size_t n) override {
    while (n > 0) {
      DWORD chunk = static_cast<DWORD>(n > (1u << 30) ? (1u << 30) : n);
      DWORD w = 0;
      if (!WriteFile(h_, p, chunk, &w, nullptr)) return WindowsError("write", path_, GetLastError());
      p += w;
      n -= w;
    }
    return Status::Ok();
  }
  std::string path_;
  HANDLE h_;
};

// A TempFile on Windows: a randomly named file created with CREATE_NEW (never
// an existing file; FILE_FLAG_OPEN_REPARSE_POINT: never through a link) and
// shared for reading only, so RemoveStaleTempFiles cannot delete it while
// this writer holds it. Commit closes it and moves it into place.
class WinTempFile final : public TempFile {
 public:
  WinTempFile(std::string path, HANDLE h) : path_(std::move(path)), file_(new WinWritableFile(path_, h)) {}
  ~WinTempFile() override {
    file_.reset();
    if (!committed_) DeleteFileW(Widen(path_).c_str());
  }
  Status Append(const void* data, std::size_t size) override { return file_->Append(data, size); }
  std::uint64_t Position() const override { return file_->Position(); }
  Status Sync() override { return file_->Sync(); }
  Status Close() override { return file_->Close(); }
  const std::string& TempPath() const override { return path_; }
  Result<bool> CommitExchange(const std::string& path) override {
    ASSIGN_OR_RETURN(bool done, Commit(path, /*replace=*/true));
    (void)done;
    return false;  // no exchange on Windows: replaced
  }
  Result<bool> Commit(const std::string& path, bool replace) override {
    if (committed_) return Internal("temporary file " + path_ + " committed twice");
    RETURN_IF_ERROR(file_->Close());
    bool moved = replace ? MoveFileReplacing(Widen(path_), Widen(path))
                         : MoveFileExW(Widen(path_).c_str(), Widen(path).c_str(), MOVEFILE_WRITE_THROUGH);
    if (!moved) {
      DWORD e = GetLastError();
      if (!replace && (e == ERROR_ALREADY_EXISTS || e == ERROR_FILE_EXISTS)) return false;
      return WindowsError("rename", path_ + " to " + path, e);
    }
    committed_ = true;
    return true;
  }

 private:
  std::string path_;
  std::unique_ptr<WinWritableFile> file_;
  bool committed_ = false;
};

class WinRandomAccessFile final : public image::RandomAccessSource {
 public:
  WinRandomAccessFile(std::string path, HANDLE h, std::uint64_t size)
      : path_(std::move(path)), h_(h), size_(size) {}
  ~WinRandomAccessFile() override { CloseHandle(h_); }
  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override {
    if (offset > size_ || size > size_ - offset) {
      return Corruption(path_ + ": read of " + std::to_string(size) + " bytes at offset " +
                        std::to_string(offset) + " runs past the end of the file (" + std::to_string(size_) +
                        " bytes)");
    }
    char* p = static_cast<char*>(dst);
    while (size > 0) {
      OVERLAPPED ov{};
      ov.Offset = static_cast<DWORD>(offset);
      ov.OffsetHigh = static_cast<DWORD>(offset >> 32);
      DWORD chunk = static_cast<DWORD>(size > (1u << 30) ? (1u << 30) : size);
      DWORD r = 0;
      if (!ReadFile(h_, p, chunk, &r, &ov)) return WindowsError("read", path_, GetLastError());
      if (r == 0) return Corruption(path_ + ": file shrank while being read");
      p += r;
      size -= r;
      offset += r;
    }
    return Status::Ok();
  }
  std::uint64_t Size() const override { return size_; }
  const std::string& Name() const override { return path_; }

 private:
  std::string path_;
  HANDLE h_;
  std::uint64_t size_;
};

// The named events of process `pid`'s trigger, one per request.
constexpr Request kEventRequests[] = {Request::kCheckpoint, Request::kCheckpointAndExit,
                                      Request::kCheckpointAndHold, Request::kRelease,
                                      Request::kReleaseAndExit};
constexpr int kEventCount = 5;

std::string EventName(std::int64_t pid, Request r) {
  const char* kind = "checkpoint-";
  switch (r) {
    case Request::kCheckpointAndExit:
      kind = "exit-";
      break;
    case Request::kCheckpointAndHold:
      kind = "hold-";
      break;
    case Request::kRelease:
      kind = "release-";
      break;
    case Request::kReleaseAndExit:
      kind = "release-exit-";
      break;
    default:
      break;
  }
  return std::string("ckpt-") + kind + std::to_string(pid);
}

// A hold request's sender records its PID in this named mapping before it
// sets the hold event, so that the held program can notice when it is gone.
std::string RequesterMappingName(std::int64_t pid) {
  return "ckpt-hold-requester-" + std::to_string(pid);
}

std::atomic<std::int64_t> g_hold_requester{0};

void ReadHoldRequester(std::int64_t self) {
  std::int64_t who = 0;
  HANDLE m = OpenFileMappingA(FILE_MAP_READ, FALSE, RequesterMappingName(self).c_str());
  if (m != nullptr) {
    if (void* v = MapViewOfFile(m, FILE_MAP_READ, 0, 0, 8)) {
      const unsigned char* b = static_cast<const unsigned char*>(v);
      for (int i = 7; i >= 0; --i) who = (who << 8) | b[i];
      UnmapViewOfFile(v);
    }
    CloseHandle(m);
  }
  g_hold_requester.store(who, std::memory_order_relaxed);
}

std::atomic<int>* g_slot = nullptr;

BOOL WINAPI CtrlHandler(DWORD type) {
  if (type == CTRL_BREAK_EVENT && g_slot != nullptr) {
    g_slot->fetch_or(static_cast<int>(Request::kCheckpointAndExit) | kRequestFromOutside,
                     std::memory_order_relaxed);
    return TRUE;
  }
  return FALSE;
}

class WinEnv final : public Env {
 public:
  ~WinEnv() override { RemoveCheckpointTrigger(); }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    HANDLE h = CreateFileW(Widen(path).c_str(), GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE, nullptr,
                           CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) return WindowsError("create", path, GetLastError());
    return std::unique_ptr<WritableFile>(new WinWritableFile(path, h));
  }
  Result<std::unique_ptr<TempFile>> NewTempFile(const std::string& dir, const std::string& prefix,
                                                unsigned /*mode: the directory's ACL applies*/) override {
    const std::string d = dir.empty() ? "." : dir;
    for (int attempt = 0; attempt < 16; ++attempt) {
      std::string path = JoinPath(d, prefix + "." + RandomHex16() + ".tmp");
      HANDLE h = CreateFileW(Widen(path).c_str(), GENERIC_WRITE, FILE_SHARE_READ, nullptr, CREATE_NEW,
                             FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, nullptr);
      if (h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        if (e == ERROR_FILE_EXISTS || e == ERROR_ALREADY_EXISTS) continue;
        return WindowsError("create", path, e);
      }
      return std::unique_ptr<TempFile>(new WinTempFile(path, h));
    }
    return IoError("create a temporary file in " + d + ": 16 random names were all taken");
  }
  void RemoveStaleTempFiles(const std::string& dir, const std::string& prefix) override {
    auto list = ListDir(dir.empty() ? "." : dir);
    if (!list.ok()) return;
    for (const auto& e : *list) {
      // A live writer's file is open without FILE_SHARE_DELETE: this fails.
      if (!e.is_dir && IsTempFileName(e.name, prefix)) DeleteFileW(Widen(JoinPath(dir, e.name)).c_str());
    }
  }
  Result<std::unique_ptr<image::RandomAccessSource>> NewRandomAccessFile(const std::string& path) override {
    if (IsDirectory(path)) return InvalidArgument(path + " is a directory, not a file");
    HANDLE h =
        CreateFileW(Widen(path).c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) return WindowsError("open", path, GetLastError());
    LARGE_INTEGER sz;
    if (!GetFileSizeEx(h, &sz)) {
      DWORD e = GetLastError();
      CloseHandle(h);
      return WindowsError("stat", path, e);
    }
    return std::unique_ptr<image::RandomAccessSource>(
        new WinRandomAccessFile(path, h, static_cast<std::uint64_t>(sz.QuadPart)));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (!MoveFileReplacing(Widen(from), Widen(to)))
      return WindowsError("rename", from + " to " + to, GetLastError());
    return Status::Ok();
  }
  Status SyncDir(const std::string&) override { return Status::Ok(); }  // MOVEFILE_WRITE_THROUGH
  Status RemoveFile(const std::string& path) override {
    if (!DeleteFileW(Widen(path).c_str())) return WindowsError("remove", path, GetLastError());
    return Status::Ok();
  }
  Status CreateDirs(const std::string& path) override {
    std::size_t i = 0;
    while (i <= path.size()) {
      std::size_t j = path.find_first_of("/\\", i);
      if (j == std::string::npos) j = path.size();
      std::string cur = path.substr(0, j);
      if (!cur.empty() && cur.back() != ':' && !IsDirectory(cur)) {
        if (!CreateDirectoryW(Widen(cur).c_str(), nullptr) && GetLastError() != ERROR_ALREADY_EXISTS)
          return WindowsError("create directory", cur, GetLastError());
      }
      i = j + 1;
    }
    return Status::Ok();
  }
  Result<std::vector<DirEntry>> ListDir(const std::string& path) override {
    WIN32_FIND_DATAW fd;
    HANDLE h = FindFirstFileW(Widen(JoinPath(path, "*")).c_str(), &fd);
    if (h == INVALID_HANDLE_VALUE) return WindowsError("list directory", path, GetLastError());
    std::vector<DirEntry> out;
    do {
      std::string n = Narrow(fd.cFileName);
      if (n == "." || n == "..") continue;
      DirEntry de;
      de.name = n;
      de.is_dir = (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
      de.size = (static_cast<std::uint64_t>(fd.nFileSizeHigh) << 32) | fd.nFileSizeLow;
      out.push_back(std::move(de));
    } while (FindNextFileW(h, &fd));
    FindClose(h);
    return out;
  }
  bool FileExists(const std::string& path) override {
    return GetFileAttributesW(Widen(path).c_str()) != INVALID_FILE_ATTRIBUTES;
  }
  bool IsDirectory(const std::string& path) override {
    DWORD a = GetFileAttributesW(Widen(path).c_str());
    return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY) != 0;
  }

  std::int64_t ProcessId() override { return static_cast<std::int64_t>(GetCurrentProcessId()); }
  bool ProcessAlive(std::int64_t pid) override {
    HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, static_cast<DWORD>(pid));
    // ERROR_INVALID_PARAMETER: no such process. Any other failure (access
    // denied, say) means it exists but this process may not wait on it.
    if (h == nullptr) return GetLastError() != ERROR_INVALID_PARAMETER;
    bool alive = WaitForSingleObject(h, 0) == WAIT_TIMEOUT;
    CloseHandle(h);
    return alive;
  }
  std::uint64_t ProcessStartTime(std::int64_t pid) override {
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(pid));
    if (h == nullptr) return 0;
    FILETIME created, exited, kernel, user;
    BOOL ok = GetProcessTimes(h, &created, &exited, &kernel, &user);
    CloseHandle(h);
    if (!ok) return 0;
    return (static_cast<std::uint64_t>(created.dwHighDateTime) << 32) | created.dwLowDateTime;
  }
  std::string HostName() override {
    char buf[MAX_COMPUTERNAME_LENGTH + 1];
    DWORD n = sizeof buf;
    if (!GetComputerNameA(buf, &n)) return "unknown";
    return std::string(buf, n);
  }
  std::string OsName() override { return "windows"; }
  std::string ExecutablePath() override {
    wchar_t buf[MAX_PATH];
    DWORD n = GetModuleFileNameW(nullptr, buf, MAX_PATH);
    return Narrow(std::wstring(buf, n));
  }
  std::string RuntimeDir() override {
    std::string d = GetEnv("CKPT_RUNTIME_DIR");
    if (!d.empty()) return d;
    wchar_t buf[MAX_PATH];
    DWORD n = GetTempPathW(MAX_PATH, buf);
    return JoinPath(Narrow(std::wstring(buf, n)), "ckpt");
  }
  std::vector<std::string> RuntimeDirs() override { return {RuntimeDir()}; }
  // %TEMP% is per user and private to it; what can still go wrong is a
  // junction or symbolic link put in place of the directory or a file.
  Status SecureRuntimeDir(const std::string& dir, bool create) override {
    if (create) RETURN_IF_ERROR(CreateDirs(dir));
    DWORD a = GetFileAttributesW(Widen(dir).c_str());
    if (a == INVALID_FILE_ATTRIBUTES) return WindowsError("runtime directory", dir, GetLastError());
    if (a & FILE_ATTRIBUTE_REPARSE_POINT)
      return FailedPrecondition("runtime directory " + dir +
                                " is a junction or symbolic link; refusing to use it (it could redirect "
                                "ckpt's files)");
    if (!(a & FILE_ATTRIBUTE_DIRECTORY))
      return FailedPrecondition("runtime directory " + dir + " is not a directory");
    return Status::Ok();
  }
  Result<std::string> ReadPrivateFile(const std::string& path, std::size_t max_size) override {
    HANDLE h =
        CreateFileW(Widen(path).c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, nullptr);
    if (h == INVALID_HANDLE_VALUE) return WindowsError("open", path, GetLastError());
    BY_HANDLE_FILE_INFORMATION info;
    Status bad;
    if (!GetFileInformationByHandle(h, &info)) {
      bad = WindowsError("stat", path, GetLastError());
    } else if (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) {
      bad = FailedPrecondition(path + " is a symbolic link or junction; refusing to follow it");
    } else if (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
      bad = FailedPrecondition(path + " is a directory, not a file");
    } else if (info.nFileSizeHigh != 0 || info.nFileSizeLow > max_size) {
      bad = FailedPrecondition(path + " is larger than " + std::to_string(max_size) + " bytes");
    }
    if (!bad.ok()) {
      CloseHandle(h);
      return bad;
    }
    std::string data(info.nFileSizeLow, '\0');
    DWORD got = 0;
    BOOL ok = data.empty() || ReadFile(h, data.data(), static_cast<DWORD>(data.size()), &got, nullptr);
    DWORD e = GetLastError();
    CloseHandle(h);
    if (!ok) return WindowsError("read", path, e);
    data.resize(got);
    return data;
  }
  std::string AbsolutePath(const std::string& path) override {
    std::wstring w = Widen(path.empty() ? "." : path);
    DWORD n = GetFullPathNameW(w.c_str(), 0, nullptr, nullptr);
    if (n == 0) return path;
    std::wstring out(n, L'\0');
    n = GetFullPathNameW(w.c_str(), n, out.data(), nullptr);
    if (n == 0) return path;
    out.resize(n);
    return Narrow(out);
  }
  std::string GetEnv(const std::string& name) override {
    wchar_t buf[32768];
    DWORD n = GetEnvironmentVariableW(Widen(name).c_str(), buf, 32768);
    if (n == 0 || n >= 32768) return "";
    return Narrow(std::wstring(buf, n));
  }
  std::int64_t NowNanos() override {
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    std::uint64_t t = (static_cast<std::uint64_t>(ft.dwHighDateTime) << 32) | ft.dwLowDateTime;
    // 100 ns ticks since 1601 to ns since 1970.
    return static_cast<std::int64_t>((t - 116444736000000000ULL) * 100);
  }

  Status InstallCheckpointTrigger(std::atomic<int>* slot) override {
    RemoveCheckpointTrigger();
    std::int64_t pid = ProcessId();
    for (int i = 0; i < kEventCount; ++i) {
      std::string name = EventName(pid, kEventRequests[i]);
      events_[i] = CreateEventA(nullptr, FALSE, FALSE, name.c_str());
      if (events_[i] == nullptr) return WindowsError("create event", name, GetLastError());
    }
    ev_stop_ = CreateEventA(nullptr, TRUE, FALSE, nullptr);
    g_slot = slot;
    SetConsoleCtrlHandler(CtrlHandler, TRUE);
    watcher_ = std::thread([this, slot, pid] {
      HANDLE hs[kEventCount + 1] = {ev_stop_};
      for (int i = 0; i < kEventCount; ++i) hs[i + 1] = events_[i];
      for (;;) {
        DWORD w = WaitForMultipleObjects(kEventCount + 1, hs, FALSE, INFINITE);
        if (w <= WAIT_OBJECT_0 || w > WAIT_OBJECT_0 + kEventCount) return;
        Request r = kEventRequests[w - WAIT_OBJECT_0 - 1];
        int bits = static_cast<int>(r);
        if (r == Request::kCheckpointAndHold) {
          ReadHoldRequester(pid);
          slot->fetch_and(~(kRequestRelease | kRequestReleaseExit), std::memory_order_relaxed);
        }
        if (r != Request::kRelease && r != Request::kReleaseAndExit) bits |= kRequestFromOutside;
        slot->fetch_or(bits, std::memory_order_relaxed);
      }
    });
    return Status::Ok();
  }
  void RemoveCheckpointTrigger() override {
    if (watcher_.joinable()) {
      SetEvent(ev_stop_);
      watcher_.join();
    }
    for (HANDLE& h : events_) {
      if (h != nullptr) CloseHandle(h);
      h = nullptr;
    }
    if (ev_stop_ != nullptr) CloseHandle(ev_stop_);
    ev_stop_ = nullptr;
    SetConsoleCtrlHandler(CtrlHandler, FALSE);
    g_slot = nullptr;
  }
  Status SendCheckpointRequest(std::int64_t pid, Request request) override {
    std::string name = EventName(pid, request);
    HANDLE h = OpenEventA(EVENT_MODIFY_STATE, FALSE, name.c_str());
    if (h == nullptr) {
      DWORD e = GetLastError();
      if (e == ERROR_FILE_NOT_FOUND)
        return NotFound("process " + std::to_string(pid) + " has no ckpt session (no event " + name + ")");
      return WindowsError("open event", name, e);
    }
    if (request == Request::kCheckpointAndHold) {
      Status st = RecordHoldRequester(pid);
      if (!st.ok()) {
        CloseHandle(h);
        return st;
      }
    }
    BOOL ok = SetEvent(h);
    DWORD e = GetLastError();
    CloseHandle(h);
    if (!ok) return WindowsError("set event", name, e);
    return Status::Ok();
  }
  std::int64_t HoldRequester() override { return g_hold_requester.load(std::memory_order_relaxed); }
  void UnsetEnv(const std::string& name) override { SetEnvironmentVariableA(name.c_str(), nullptr); }

 private:
  // Creates (or takes over) the mapping that tells process `pid` who holds
  // it; the mapping lives as long as this process (its handle is kept).
  Status RecordHoldRequester(std::int64_t pid) {
    std::string name = RequesterMappingName(pid);
    HANDLE m = CreateFileMappingA(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, 0, 8, name.c_str());
    if (m == nullptr) return WindowsError("create mapping", name, GetLastError());
    void* v = MapViewOfFile(m, FILE_MAP_WRITE, 0, 0, 8);
    if (v == nullptr) {
      DWORD e = GetLastError();
      CloseHandle(m);
      return WindowsError("map", name, e);
    }
    std::uint64_t self = static_cast<std::uint64_t>(ProcessId());
    unsigned char* b = static_cast<unsigned char*>(v);
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(self >> (8 * i));
    UnmapViewOfFile(v);
    std::lock_guard<std::mutex> lk(mappings_mu_);
    mappings_.push_back(m);
    return Status::Ok();
  }

  HANDLE events_[kEventCount] = {};
  HANDLE ev_stop_ = nullptr;
  std::thread watcher_;
  std::mutex mappings_mu_;
  std::vector<HANDLE> mappings_;
};

}  // namespace

Env* Env::Default() {
  static WinEnv env;
  return &env;
}

Result<std::unique_ptr<image::RandomAccessSource>> OpenFollowedFile(const std::string& path,
                                                                    const FollowSpec&) {
  return NotSupported(path + ": reading an image while it is written is not built for Windows");
}

}  // namespace ckpt::platform
