// Established TCP connections through the kernel's repair mode (TCP_REPAIR,
// Linux 3.5+, CAP_NET_ADMIN): a socket in repair mode sends nothing — not
// even a reset when it is closed — and shows and takes its sequence numbers,
// queues, window and negotiated options, so that a connection moves from
// one socket to a new one without the peer seeing more than a pause. The
// network lock (net_lock.h) drops the connection's packets meanwhile.
//
// Dump, on ckpt's copy of the socket (pidfd_getfd) while the process is
// frozen and the lock is on: EnterRepair, ReadTcpRepair, LeaveRepair (the
// process frozen and the lock on, nothing changes what was read). If the
// process is killed after the image, EnterRepair again before the kill:
// closing the copy after it ends the connection silently.
//
// Restore: CreateConnectedSocket makes the connection again in repair mode
// — sequence numbers, bound address, peer, options, timestamp, both queues
// (the bytes already sent as sent), window — and FinishConnection, once the
// process is rebuilt, leaves repair mode (the kernel then probes the peer's
// window) and queues the bytes never sent. Stateless.
#pragma once

#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

// tcp_info's tcpi_state values ckpt saves.
inline constexpr int kTcpEstablished = 1;
inline constexpr int kTcpFinWait2 = 5;   // the process closed its side, the peer acknowledged it
inline constexpr int kTcpCloseWait = 8;  // the peer closed its side

// A connection in a state ckpt saves, and how the refusals name those.
inline bool TcpStateSaved(int state) {
  return state == kTcpEstablished || state == kTcpCloseWait || state == kTcpFinWait2;
}
inline constexpr const char* kTcpStatesSaved =
    "only established, CLOSE_WAIT and FIN_WAIT2 connections are saved";

// "ESTABLISHED", "CLOSE_WAIT", ... (tcp_info's tcpi_state).
const char* TcpStateName(int state);

// NotSupported (naming `what`) if connection `s` (a copy of the process's
// descriptor, not yet in repair mode) holds urgent data the process has not
// read.
Status RefuseUrgentData(int s, const InetSocket& u, const std::string& what);
Status EnterRepair(int s);
Status LeaveRepair(int s);

// The state of connection `s` (in repair mode) into `t`; `what` names it in
// errors. Refuses a connection in any state but ESTABLISHED, CLOSE_WAIT and
// FIN_WAIT2.
Status ReadTcpRepair(int s, const std::string& what, TcpRepair* t);

// In ckpt: the socket of connected `u` (u.peer set), close-on-exec; TCP:
// established, still in repair mode.
Result<int> CreateConnectedSocket(const InetSocket& u);

// TCP: leaves repair mode (a connection its peer had closed: then shuts its
// receive side) and queues the bytes never sent; then the
// process's SO_REUSEADDR.
Status FinishConnection(int s, const InetSocket& u);

}  // namespace ckpt::engine
