#include "lib/hold.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "platform/socket.h"

namespace ckpt::lib {

Result<double> HoldTimeoutFromEnvironment(platform::Env* env) {
  std::string v = env->GetEnv("CKPT_HOLD_TIMEOUT");
  if (v.empty()) return kDefaultHoldTimeout;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !(d > 0) || d > 1e9)
    return InvalidArgument("CKPT_HOLD_TIMEOUT='" + v + "' is not a number of seconds above 0");
  return d;
}

HoldDecision WaitForHoldDecision(platform::Env* env, std::atomic<int>* pending, double timeout,
                                 std::string* note) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
  const std::int64_t requester = env->HoldRequester();
  const std::uint64_t requester_start = requester > 0 ? env->ProcessStartTime(requester) : 0;
  for (int round = 0;; ++round) {
    int p = pending->fetch_and(~(platform::kRequestRelease | platform::kRequestReleaseExit),
                               std::memory_order_relaxed);
    if (p & platform::kRequestReleaseExit) return HoldDecision::kExit;
    if (p & platform::kRequestRelease) return HoldDecision::kRelease;
    // The requester: every ~50 ms (a /proc read), and whether its PID was reused.
    if (requester > 0 && round % 16 == 0) {
      bool gone = !env->ProcessAlive(requester);
      if (!gone && requester_start != 0) gone = env->ProcessStartTime(requester) != requester_start;
      if (gone) {
        *note = "the migration that held this program (pid " + std::to_string(requester) +
                ") ended without a decision; continuing";
        return HoldDecision::kRelease;
      }
    }
    if (Clock::now() >= deadline) {
      char b[32];
      (void)std::snprintf(b, sizeof b, "%g", timeout);
      *note = std::string("no decision came within the hold timeout (") + b +
              " s, CKPT_HOLD_TIMEOUT) for the migration that held this program" +
              (requester > 0 ? " (pid " + std::to_string(requester) + ")" : std::string()) + "; continuing";
      return HoldDecision::kRelease;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
}

Handoff TakeHandoff(platform::Env* env) {
  Handoff h;
  std::string port = env->GetEnv("CKPT_HOLD_PORT");
  std::string token = env->GetEnv("CKPT_HOLD_TOKEN");
  if (port.empty() && token.empty()) return h;
  env->UnsetEnv("CKPT_HOLD_PORT");
  env->UnsetEnv("CKPT_HOLD_TOKEN");
  h.requested = true;
  bool port_ok =
      !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  long n = port_ok ? std::strtol(port.c_str(), nullptr, 10) : 0;
  if (!port_ok || n < 1 || n > 65535) {
    h.error = "CKPT_HOLD_PORT='" + port + "' is not a port number (1-65535)";
    return h;
  }
  if (token.size() != 32 || token.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    h.error = "CKPT_HOLD_TOKEN is not 32 hexadecimal digits";
    return h;
  }
  h.port = static_cast<int>(n);
  h.token = token;
  return h;
}

Status RunHandoff(const Handoff& h, std::int64_t pid, double timeout) {
  if (!h.error.empty()) return InvalidArgument(h.error);
  const std::string where = "the migration's handoff port 127.0.0.1:" + std::to_string(h.port);
  auto sock = platform::ConnectLoopback(h.port);
  if (!sock.ok()) return sock.status().WithContext("cannot reach " + where);
  std::string line = "CKPTHOLD " + h.token + " " + std::to_string(pid) + "\n";
  Status st = (*sock)->SendAll(line.data(), line.size());
  if (!st.ok()) return st.WithContext("cannot report to " + where);
  char b = 0;
  double ms = timeout * 1000;
  st = (*sock)->RecvAll(&b, 1, ms >= 2e9 ? -1 : static_cast<int>(ms));
  if (st.code() == Code::kTimeout) {
    char t[32];
    (void)std::snprintf(t, sizeof t, "%g", timeout);
    return Timeout(std::string("no answer from ") + where + " within the hold timeout (" + t +
                   " s, CKPT_HOLD_TIMEOUT)");
  }
  if (!st.ok()) return st.WithContext(where + " closed without the go-ahead");
  if (b != 'g') {
    char t[8];
    (void)std::snprintf(t, sizeof t, "0x%02x", static_cast<unsigned char>(b));
    return FailedPrecondition(where + " answered " + t + " instead of the go-ahead 'g'");
  }
  return Status::Ok();
}

Result<std::int64_t> ReadReportLine(platform::Socket* sock, const std::string& word, const std::string& token,
                                    int timeout_ms) {
  std::string line;
  char c = 0;
  while (line.size() < 128) {
    RETURN_IF_ERROR(sock->RecvAll(&c, 1, timeout_ms));
    if (c == '\n') break;
    line += c;
  }
  const std::string want = word + " " + token + " ";
  if (line.rfind(want, 0) != 0) return FailedPrecondition("a process that is not the program connected");
  return std::strtoll(line.c_str() + want.size(), nullptr, 10);
}

std::string StreamTicketPath(const std::string& registration_path) {
  return registration_path + ".stream";
}

std::string EncodeStreamTicket(const StreamTicket& t) {
  return "CKPTSTREAM 1 " + std::to_string(t.port) + " " + t.token + " " + std::to_string(t.requester) + "\n";
}

Result<StreamTicket> ParseStreamTicket(const std::string& text) {
  char token[33] = {};
  int port = 0;
  long long requester = 0;
  int used = 0;
  StreamTicket t;
  if (std::sscanf(text.c_str(), "CKPTSTREAM 1 %d %32s %lld%n", &port, token, &requester, &used) != 3 ||
      port < 1 || port > 65535 || requester < 1 || std::string(token).size() != 32 ||
      std::string(token).find_first_not_of("0123456789abcdef") != std::string::npos ||
      text.find_first_not_of('\n', static_cast<std::size_t>(used)) != std::string::npos)
    return Corruption("the migration's stream ticket is malformed");
  t.port = port;
  t.token = token;
  t.requester = requester;
  return t;
}

Status StreamSink::Append(const void* data, std::size_t size) {
  constexpr std::size_t kBuffer = 1 << 20;
  pos_ += size;
  if (buf_.size() + size < kBuffer) {
    buf_.append(static_cast<const char*>(data), size);
    return Status::Ok();
  }
  if (!buf_.empty()) {
    RETURN_IF_ERROR(sock_->SendAll(buf_.data(), buf_.size()));
    buf_.clear();
  }
  if (size >= kBuffer) return sock_->SendAll(data, size);
  buf_.append(static_cast<const char*>(data), size);
  return Status::Ok();
}

Status StreamSink::Finish() {
  if (!buf_.empty()) RETURN_IF_ERROR(sock_->SendAll(buf_.data(), buf_.size()));
  buf_.clear();
  // The reader sees the end once it has read everything; a close with
  // nothing unread in this direction loses nothing still in flight.
  sock_->ShutdownWrite();
  return Status::Ok();
}

Result<std::unique_ptr<StreamSink>> TakeStreamTicket(platform::Env* env, const std::string& registration_path,
                                                     std::int64_t pid) {
  const std::string path = StreamTicketPath(registration_path);
  auto text = env->ReadPrivateFile(path, 256);
  if (text.status().code() == Code::kNotFound) return std::unique_ptr<StreamSink>();
  if (!text.ok()) return text.status().WithContext("the migration's stream ticket");
  auto t = ParseStreamTicket(*text);
  const std::int64_t requester = env->HoldRequester();
  // Another requester's (a migration that ended before this safepoint, say): not ours.
  if (t.ok() && requester > 0 && t->requester != requester) return std::unique_ptr<StreamSink>();
  env->RemoveFile(path).IgnoreError();
  if (!t.ok()) return t.status();
  const std::string where = "the migration's stream port 127.0.0.1:" + std::to_string(t->port);
  auto sock = platform::ConnectLoopback(t->port);
  if (!sock.ok()) return sock.status().WithContext("cannot reach " + where);
  std::string line = "CKPTSTREAM " + t->token + " " + std::to_string(pid) + "\n";
  Status st = (*sock)->SendAll(line.data(), line.size());
  if (!st.ok()) return st.WithContext("cannot report to " + where);
  return std::make_unique<StreamSink>(std::move(sock).value());
}

}  // namespace ckpt::lib
