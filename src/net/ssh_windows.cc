// The ssh transport on Windows: CreateProcess of the ssh client with its
// standard input and output on a channel of ours.
//
// - On Windows, anonymous pipes (Windows' OpenSSH ssh.exe reads and writes
//   them as git's ssh does); standard error on a third pipe, kept for
//   messages.
// - Under Wine, a connected pair of loopback TCP sockets instead: Wine runs a
//   Linux ssh (/usr/bin/ssh) natively, and gives it as descriptors 0 and 1
//   only handles that are Unix descriptors underneath — a socket is, Wine's
//   pipes are not. Wine gives no process handle for a Linux program either:
//   its exit status is unknown (Finish() says -1) and its standard error is
//   ckpt's own.
#include <winsock2.h>  // before windows.h
#include <ws2tcpip.h>
// (kept apart, so that formatting keeps them in this order)
#include <windows.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "net/ssh.h"
#include "platform/windows_util.h"

namespace ckpt::net {

namespace {

using platform::Narrow;
using platform::Widen;
using platform::WindowsError;

bool UnderWine() {
  HMODULE nt = GetModuleHandleW(L"ntdll.dll");
  return nt != nullptr && GetProcAddress(nt, "wine_get_version") != nullptr;
}

// One argument quoted for CommandLineToArgvW and the C runtime (Wine splits
// a Linux program's command line by the same rules).
std::wstring QuoteArg(const std::wstring& a) {
  if (!a.empty() && a.find_first_of(L" \t\n\v\"") == std::wstring::npos) return a;
  std::wstring q = L"\"";
  for (std::size_t i = 0;; ++i) {
    std::size_t slashes = 0;
    while (i < a.size() && a[i] == L'\\') {
      ++slashes;
      ++i;
    }
    if (i == a.size()) {
      q.append(slashes * 2, L'\\');
      break;
    }
    if (a[i] == L'"') {
      q.append(slashes * 2 + 1, L'\\');
    } else {
      q.append(slashes, L'\\');
    }
    q += a[i];
  }
  return q + L'"';
}

// Wine's own conversion of a Linux path to a DOS one; "" outside Wine.
std::wstring WineDosName(const std::string& unix_path) {
  using Fn = WCHAR*(CDECL*)(const char*);
  HMODULE k = GetModuleHandleW(L"kernel32.dll");
  auto fn = k != nullptr
                ? reinterpret_cast<Fn>(reinterpret_cast<void*>(GetProcAddress(k, "wine_get_dos_file_name")))
                : nullptr;
  if (fn == nullptr) return L"";
  WCHAR* dos = fn(unix_path.c_str());
  if (dos == nullptr) return L"";
  std::wstring out = dos;
  HeapFree(GetProcessHeap(), 0, dos);
  return out;
}

bool IsFile(const std::wstring& p) {
  DWORD a = GetFileAttributesW(p.c_str());
  return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

// The client's executable: a path as given (under Wine a Linux path such as
// /usr/bin/ssh is converted, so it does not depend on the current drive); a
// name is looked up in PATH (with .exe) and, under Wine, whose PATH has only
// Windows directories, in /usr/local/bin, /usr/bin and /bin.
std::wstring FindClient(const std::string& name) {
  if (!name.empty() && name[0] == '/') {
    std::wstring dos = WineDosName(name);
    return dos.empty() ? Widen(name) : dos;
  }
  if (name.find_first_of("/\\:") != std::string::npos) return Widen(name);
  wchar_t buf[MAX_PATH];
  DWORD n = SearchPathW(nullptr, Widen(name).c_str(), L".exe", MAX_PATH, buf, nullptr);
  if (n > 0 && n < MAX_PATH) return std::wstring(buf, n);
  for (const char* dir : {"/usr/local/bin/", "/usr/bin/", "/bin/"}) {
    std::wstring dos = WineDosName(dir + name);
    if (!dos.empty() && IsFile(dos)) return dos;
  }
  return Widen(name);  // CreateProcess then says what is wrong
}

Status WsaError(const std::string& op) {
  return WindowsError(op, "loopback socket for ssh", static_cast<unsigned long>(WSAGetLastError()));
}

// A connected pair of loopback sockets; `theirs` is not overlapped (usable
// as a child's standard handle) and inheritable, `ours` is not inheritable.
Status SocketPair(SOCKET* ours, SOCKET* theirs) {
  static const bool started = [] {
    WSADATA d;
    return WSAStartup(MAKEWORD(2, 2), &d) == 0;
  }();
  if (!started) return IoError("start Winsock: WSAStartup failed");
  SOCKET l = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_NO_HANDLE_INHERIT);
  if (l == INVALID_SOCKET) return WsaError("create");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int len = sizeof a;
  if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 8) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    Status st = WsaError("listen on");
    closesocket(l);
    return st;
  }
  SOCKET t = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, 0);
  sockaddr_in mine{};
  int mlen = sizeof mine;
  if (t == INVALID_SOCKET || connect(t, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(t, reinterpret_cast<sockaddr*>(&mine), &mlen) != 0) {
    Status st = WsaError("connect");
    if (t != INVALID_SOCKET) closesocket(t);
    closesocket(l);
    return st;
  }
  // Only our own connection: another local process may have raced to the port.
  SOCKET o = INVALID_SOCKET;
  for (int tries = 0; tries < 8 && o == INVALID_SOCKET; ++tries) {
    sockaddr_in peer{};
    int plen = sizeof peer;
    SOCKET c = accept(l, reinterpret_cast<sockaddr*>(&peer), &plen);
    if (c == INVALID_SOCKET) break;
    if (peer.sin_port == mine.sin_port && peer.sin_addr.s_addr == mine.sin_addr.s_addr) {
      o = c;
    } else {
      closesocket(c);
    }
  }
  Status st = o == INVALID_SOCKET ? WsaError("accept") : Status::Ok();
  closesocket(l);
  if (!st.ok()) {
    closesocket(t);
    return st;
  }
  SetHandleInformation(reinterpret_cast<HANDLE>(o), HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(reinterpret_cast<HANDLE>(t), HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  *ours = o;
  *theirs = t;
  return Status::Ok();
}

// An anonymous pipe whose `child_end` (0: read, 1: write) is inheritable.
Status Pipe(HANDLE* ours, HANDLE* theirs, int child_end) {
  HANDLE h[2];
  if (!CreatePipe(&h[0], &h[1], nullptr, 1 << 16))
    return WindowsError("create", "pipe for ssh", GetLastError());
  *theirs = h[child_end];
  *ours = h[1 - child_end];
  SetHandleInformation(*theirs, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  return Status::Ok();
}

class WindowsSshChannel final : public SshChannel {
 public:
  WindowsSshChannel(std::string describe, HANDLE proc, DWORD pid)
      : describe_(std::move(describe)), proc_(proc), pid_(pid) {}
  ~WindowsSshChannel() override {
    if (!finished_) Finish(-1);
    if (sock_ != INVALID_SOCKET) closesocket(sock_);
    if (rd_ != nullptr) CloseHandle(rd_);
  }
  void UseSocket(SOCKET s) { sock_ = s; }
  void UsePipes(HANDLE rd, HANDLE wr, HANDLE err) {
    rd_ = rd;
    wr_ = wr;
    if (err == nullptr) return;
    err_thread_ = std::thread([this, err] {  // ssh's messages, up to 1 MiB
      char buf[4096];
      DWORD n = 0;
      while (ReadFile(err, buf, sizeof buf, &n, nullptr) && n > 0) {
        std::lock_guard<std::mutex> lk(err_mu_);
        if (err_.size() < (1u << 20)) err_.append(buf, n);
      }
      CloseHandle(err);
    });
  }

  Status Write(const void* data, std::size_t size) override {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      int chunk = size > (1u << 20) ? (1 << 20) : static_cast<int>(size);
      int n = -1;
      if (sock_ != INVALID_SOCKET && !write_closed_) {
        n = send(sock_, p, chunk, 0);
        if (n == SOCKET_ERROR)
          return WindowsError("write to", describe_, static_cast<unsigned long>(WSAGetLastError()));
      } else if (wr_ != nullptr) {
        DWORD w = 0;
        if (!WriteFile(wr_, p, static_cast<DWORD>(chunk), &w, nullptr))
          return WindowsError("write to", describe_, GetLastError());
        n = static_cast<int>(w);
      } else {
        return FailedPrecondition("writing to " + describe_ + " after closing it");
      }
      p += n;
      size -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }

  Status Read(void* data, std::size_t size, int timeout_ms) override {
    char* p = static_cast<char*>(data);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (size > 0) {
      int left = -1;
      if (timeout_ms >= 0) {
        auto l = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                       std::chrono::steady_clock::now());
        left = l.count() > 0 ? static_cast<int>(l.count()) : 0;
      }
      RETURN_IF_ERROR(WaitReadable(left, timeout_ms));
      int chunk = size > (1u << 20) ? (1 << 20) : static_cast<int>(size);
      int n = 0;
      if (sock_ != INVALID_SOCKET) {
        n = recv(sock_, p, chunk, 0);
        if (n == SOCKET_ERROR)
          return WindowsError("read from", describe_, static_cast<unsigned long>(WSAGetLastError()));
      } else {
        DWORD r = 0;
        if (!ReadFile(rd_, p, static_cast<DWORD>(chunk), &r, nullptr)) {
          DWORD e = GetLastError();
          if (e != ERROR_BROKEN_PIPE) return WindowsError("read from", describe_, e);
        }
        n = static_cast<int>(r);
      }
      if (n == 0) return NotFound(describe_ + " closed the connection");
      p += n;
      size -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }

  void CloseWrite() override {
    if (sock_ != INVALID_SOCKET && !write_closed_) shutdown(sock_, SD_SEND);
    write_closed_ = true;
    if (wr_ != nullptr) CloseHandle(wr_);
    wr_ = nullptr;
  }
  std::string Describe() const override { return describe_; }

  int Finish(int grace_ms) override {
    CloseWrite();
    if (finished_) return status_;
    finished_ = true;
    if (proc_ != nullptr) {
      if (grace_ms >= 0 && WaitForSingleObject(proc_, static_cast<DWORD>(grace_ms)) == WAIT_TIMEOUT) {
        TerminateProcess(proc_, 143);
        ended_ = true;
      }
      WaitForSingleObject(proc_, INFINITE);
      DWORD code = 255;
      GetExitCodeProcess(proc_, &code);
      CloseHandle(proc_);
      proc_ = nullptr;
      status_ = static_cast<int>(code);
    } else {
      // No handle (Wine ran a Linux ssh): it has ended when its end of the
      // socket closes. What it still sends is past the protocol's end.
      char buf[4096];
      auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
      for (;;) {
        if (grace_ms >= 0 && std::chrono::steady_clock::now() >= end) {
          shutdown(sock_, SD_BOTH);
          ended_ = true;
          break;
        }
        if (!WaitReadable(100, 100).ok()) continue;
        if (recv(sock_, buf, sizeof buf, 0) <= 0) break;
      }
      status_ = -1;
    }
    if (err_thread_.joinable()) err_thread_.join();
    return status_;
  }
  std::string ErrorText() override {
    std::lock_guard<std::mutex> lk(err_mu_);
    return err_;
  }
  void Kill() override {
    if (proc_ != nullptr) {
      TerminateProcess(proc_, 137);
    } else if (sock_ != INVALID_SOCKET) {
      shutdown(sock_, SD_BOTH);  // a Linux ssh under Wine: it sees the end
    }
  }
  long Pid() const override { return static_cast<long>(pid_); }
  bool EndedByUs() const override { return ended_; }

 private:
  // Until a read would not block; Timeout after `ms` (-1: no limit).
  Status WaitReadable(int ms, int timeout_ms) {
    if (ms < 0) return Status::Ok();
    if (sock_ != INVALID_SOCKET) {
      fd_set set;
      FD_ZERO(&set);
      FD_SET(sock_, &set);
      timeval tv{ms / 1000, (ms % 1000) * 1000};
      int r = select(0, &set, nullptr, nullptr, &tv);
      if (r == SOCKET_ERROR)
        return WindowsError("wait for", describe_, static_cast<unsigned long>(WSAGetLastError()));
      if (r > 0) return Status::Ok();
    } else {
      auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
      do {
        DWORD avail = 0;
        if (!PeekNamedPipe(rd_, nullptr, 0, nullptr, &avail, nullptr) || avail > 0)
          return Status::Ok();  // data, or the end (the read reports it)
        Sleep(5);
      } while (std::chrono::steady_clock::now() < end);
    }
    return Timeout(describe_ + " sent nothing for " + std::to_string(timeout_ms / 1000) + " s");
  }

  std::string describe_;
  HANDLE proc_;
  DWORD pid_;
  SOCKET sock_ = INVALID_SOCKET;
  HANDLE rd_ = nullptr, wr_ = nullptr;
  bool write_closed_ = false;
  bool finished_ = false;
  bool ended_ = false;
  int status_ = 255;
  std::thread err_thread_;
  std::mutex err_mu_;
  std::string err_;
};

}  // namespace

Result<std::unique_ptr<SshChannel>> StartSsh(const SshTarget& target, const SshOptions& options,
                                             const std::vector<std::string>& remote_argv) {
  ASSIGN_OR_RETURN(std::vector<std::string> argv, SshArgv(target, options, remote_argv));
  std::wstring cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? L"" : L" ") + QuoteArg(Widen(a));
  std::wstring app = FindClient(argv[0]);
  const bool wine = UnderWine();
  STARTUPINFOW si{};
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  SOCKET ours = INVALID_SOCKET, theirs = INVALID_SOCKET;
  HANDLE in_w = nullptr, in_r = nullptr, out_r = nullptr, out_w = nullptr, err_r = nullptr, err_w = nullptr;
  auto close_all = [&] {
    for (HANDLE h : {in_w, in_r, out_r, out_w, err_r, err_w})
      if (h != nullptr) CloseHandle(h);
    if (ours != INVALID_SOCKET) closesocket(ours);
    if (theirs != INVALID_SOCKET) closesocket(theirs);
  };
  Status st;
  if (wine) {
    st = SocketPair(&ours, &theirs);
    si.hStdInput = si.hStdOutput = reinterpret_cast<HANDLE>(theirs);
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  } else {
    st = Pipe(&in_w, &in_r, 0);
    if (st.ok()) st = Pipe(&out_r, &out_w, 1);
    if (st.ok()) st = Pipe(&err_r, &err_w, 1);
    si.hStdInput = in_r;
    si.hStdOutput = out_w;
    si.hStdError = err_w;
  }
  if (!st.ok()) {
    close_all();
    return st;
  }
  PROCESS_INFORMATION pi{};
  // Windows: not in ckpt's console process group, so a Ctrl-C meant for ckpt
  // reaches ckpt, which then ends the migration in order. (Not under Wine,
  // which would then give a Linux program no standard input and output.)
  BOOL made = CreateProcessW(app.c_str(), cmd.data(), nullptr, nullptr, TRUE,
                             wine ? 0 : CREATE_NEW_PROCESS_GROUP, nullptr, nullptr, &si, &pi);
  DWORD err = GetLastError();
  for (HANDLE* h : {&in_r, &out_w, &err_w}) {
    if (*h != nullptr) CloseHandle(*h);
    *h = nullptr;
  }
  if (theirs != INVALID_SOCKET) closesocket(theirs);
  theirs = INVALID_SOCKET;
  if (!made) {
    close_all();
    return WindowsError("start", "the ssh client " + Narrow(app), err);
  }
  if (pi.hThread != nullptr) CloseHandle(pi.hThread);
  auto ch = std::make_unique<WindowsSshChannel>(target.Url(), pi.hProcess, pi.hProcess ? pi.dwProcessId : 0);
  if (wine) {
    ch->UseSocket(ours);
  } else {
    ch->UsePipes(out_r, in_w, err_r);
  }
  return std::unique_ptr<SshChannel>(std::move(ch));
}

}  // namespace ckpt::net
