// Migration support inside a ckpt session (docs/api.md, "Migration: holds
// and handoffs").
//
// Source side: after a checkpoint-and-hold request the program writes its
// image and waits inside that safepoint for a decision — release (continue)
// or exit (status 75, no further image). It never waits forever: it
// continues on its own when the requester is gone or the hold timeout
// (CKPT_HOLD_TIMEOUT, default 600 s) passes.
//
// Streamed source side: a migration that wants the image in its connection,
// not in a file, writes a ticket beside the program's registration
// (StreamTicketPath) before its hold request. At the safepoint that serves
// the request the program takes the ticket — only if the requester named in
// it is the one that sent the hold request — connects to 127.0.0.1:PORT,
// reports ("CKPTSTREAM TOKEN PID\n") and writes the image into that
// connection instead of a file, then holds as above. Without a ticket it
// writes a file, as before.
//
// Target side: a program started with CKPT_HOLD_PORT and CKPT_HOLD_TOKEN
// reports to 127.0.0.1:PORT at its first safepoint ("CKPTHOLD TOKEN PID\n")
// and runs on only after it reads the byte 'g'; anything else ends it with
// status 76 (kExitHandoffAborted) before any of its own work.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "image/io.h"
#include "platform/env.h"
#include "platform/socket.h"

namespace ckpt::lib {

inline constexpr double kDefaultHoldTimeout = 600;

// CKPT_HOLD_TIMEOUT in seconds (a number above 0), or kDefaultHoldTimeout
// when unset; InvalidArgument for anything else.
Result<double> HoldTimeoutFromEnvironment(platform::Env* env);

enum class HoldDecision { kRelease, kExit };

// Waits (polling every few ms) for a decision bit in *pending
// (platform::kRequestRelease / kRequestReleaseExit) and clears it. Without a
// decision it releases when the requester (Env::HoldRequester(), if known)
// has ended or `timeout` seconds have passed; *note then says why.
HoldDecision WaitForHoldDecision(platform::Env* env, std::atomic<int>* pending, double timeout,
                                 std::string* note);

// The target side of a handoff, taken from the environment.
struct Handoff {
  bool requested = false;  // CKPT_HOLD_PORT or CKPT_HOLD_TOKEN was set
  int port = 0;
  std::string token;  // 32 hex digits
  std::string error;  // why the variables are unusable ("" when fine)
};
// Reads CKPT_HOLD_PORT and CKPT_HOLD_TOKEN and removes both from the
// environment, so that the program's children do not inherit them.
Handoff TakeHandoff(platform::Env* env);
// Connects, reports and waits up to `timeout` s for 'g'. Ok only for 'g';
// otherwise the reason the program must not run.
Status RunHandoff(const Handoff& h, std::int64_t pid, double timeout);

// Reads a program's report "WORD TOKEN PID\n" (WORD: CKPTHOLD, CKPTSTREAM)
// from a connection it made; its PID, or FailedPrecondition when another
// process connected (a wrong word or token).
Result<std::int64_t> ReadReportLine(platform::Socket* sock, const std::string& word, const std::string& token,
                                    int timeout_ms);

// The ticket of a streamed checkpoint-and-hold.
struct StreamTicket {
  int port = 0;
  std::string token;           // 32 hex digits
  std::int64_t requester = 0;  // the process that asks for the hold
};
std::string StreamTicketPath(const std::string& registration_path);
std::string EncodeStreamTicket(const StreamTicket& t);
Result<StreamTicket> ParseStreamTicket(const std::string& text);

// An image's way into a migration's loopback connection (buffered).
class StreamSink final : public image::Sink {
 public:
  explicit StreamSink(std::unique_ptr<platform::Socket> sock) : sock_(std::move(sock)) {}
  Status Append(const void* data, std::size_t size) override;
  std::uint64_t Position() const override { return pos_; }
  // Sends what is buffered and ends the stream (the reader sees its end).
  Status Finish();

 private:
  std::unique_ptr<platform::Socket> sock_;
  std::string buf_;
  std::uint64_t pos_ = 0;
};

// At a safepoint serving a hold request: the stream the ticket beside
// `registration_path` asks for, connected and announced; nullptr when there
// is no ticket for this hold (none, or another requester's). An error when
// the ticket is for this hold but unusable (the checkpoint then fails, and
// the program runs on).
Result<std::unique_ptr<StreamSink>> TakeStreamTicket(platform::Env* env, const std::string& registration_path,
                                                     std::int64_t pid);

}  // namespace ckpt::lib
