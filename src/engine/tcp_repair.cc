#include "engine/tcp_repair.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "engine/inet_sockets.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr std::size_t kChunk = 64 * 1024;

Status Set(int s, int level, int name, const void* v, socklen_t len, const std::string& what,
           const char* opt) {
  if (::setsockopt(s, level, name, v, len) != 0)
    return PosixError(std::string("setsockopt ") + opt, what, errno);
  return Status::Ok();
}

Status SetInt(int s, int level, int name, int v, const std::string& what, const char* opt) {
  return Set(s, level, name, &v, sizeof v, what, opt);
}

Status GetU32(int s, int name, std::uint32_t* v, const std::string& what, const char* opt) {
  socklen_t len = sizeof *v;
  if (::getsockopt(s, IPPROTO_TCP, name, v, &len) != 0)
    return PosixError(std::string("getsockopt ") + opt, what, errno);
  return Status::Ok();
}

// The `len` bytes of the queue chosen with TCP_REPAIR_QUEUE, taken by peeking.
Status PeekQueue(int s, int queue, int len, const std::string& what, std::uint32_t* seq, std::string* out) {
  RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, what, "TCP_REPAIR_QUEUE"));
  RETURN_IF_ERROR(GetU32(s, TCP_QUEUE_SEQ, seq, what, "TCP_QUEUE_SEQ"));
  out->assign(static_cast<std::size_t>(len), '\0');
  if (len == 0) return Status::Ok();
  ssize_t n = ::recv(s, out->data(), out->size(), MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return PosixError("peek the TCP queue of", what, errno);
  if (n != len) {
    return Internal("peeking the " + std::string(queue == TCP_SEND_QUEUE ? "send" : "receive") +
                    " queue of " + what + " gave " + std::to_string(n) + " of " + std::to_string(len) +
                    " bytes");
  }
  return Status::Ok();
}

// Writes `data` into the queue chosen with TCP_REPAIR_QUEUE (or, out of
// repair mode, sends it), in chunks the kernel takes whole.
Status WriteQueue(int s, std::string_view data, const std::string& what) {
  std::size_t done = 0;
  while (done < data.size()) {
    std::size_t n = std::min(kChunk, data.size() - done);
    ssize_t w = ::send(s, data.data() + done, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) return PosixError("refill the TCP queue of", what, errno);
    done += static_cast<std::size_t>(w);
  }
  return Status::Ok();
}

std::string Describe(const InetSocket& u) {
  return "fd " + std::to_string(u.fd) + " (" + InetAddressText(u.addr) + " to " + InetAddressText(u.peer) +
         ")";
}

// Sequence numbers, address and peer: the socket becomes ESTABLISHED
// without a packet (repair mode).
Status Reconnect(int s, const InetSocket& u, const std::string& what) {
  const TcpRepair& t = u.tcp;
  RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR, 1, what, "TCP_REPAIR"));
  RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, what, "TCP_REPAIR_QUEUE"));
  std::uint32_t rseq = t.rcv_seq - static_cast<std::uint32_t>(t.recvq.size());
  RETURN_IF_ERROR(Set(s, IPPROTO_TCP, TCP_QUEUE_SEQ, &rseq, sizeof rseq, what, "TCP_QUEUE_SEQ"));
  RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, what, "TCP_REPAIR_QUEUE"));
  // A FIN the process sent is counted in snd_seq; the restore queues it
  // again (RefillConnection), under the same number.
  std::uint32_t sseq = t.snd_seq - static_cast<std::uint32_t>(t.sendq.size()) - (t.write_shut ? 1 : 0);
  RETURN_IF_ERROR(Set(s, IPPROTO_TCP, TCP_QUEUE_SEQ, &sseq, sizeof sseq, what, "TCP_QUEUE_SEQ"));
  // The MSS clamp before connect() sizes the segments (else 536 bytes);
  // TCP_MAXSEG takes at most 32767 (loopback's 65483 becomes that).
  if (t.mss >= 88) {
    int mss = static_cast<int>(std::min<std::uint32_t>(t.mss, 32767));
    RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_MAXSEG, mss, what, "TCP_MAXSEG"));
  }
  // Repair mode forces the bind (sk_reuse = SK_FORCE_REUSE; SO_REUSEADDR
  // now would undo that): the listening socket that accepted this
  // connection may hold the port already.
  if (::bind(s, reinterpret_cast<const sockaddr*>(u.addr.data()), static_cast<socklen_t>(u.addr.size())) != 0)
    return PosixError("bind", what + (errno == EADDRNOTAVAIL ? ": the address is not on this host" : ""),
                      errno);
  if (::connect(s, reinterpret_cast<const sockaddr*>(u.peer.data()), static_cast<socklen_t>(u.peer.size())) !=
      0)
    return PosixError("connect (repair mode)", what, errno);
  return Status::Ok();
}

// Negotiated options, timestamp, queues and window of the established socket.
Status RefillConnection(int s, const InetSocket& u, const std::string& what) {
  const TcpRepair& t = u.tcp;
  std::vector<tcp_repair_opt> opts = {{TCPOPT_MAXSEG, t.mss}};
  if ((t.options & TCPI_OPT_WSCALE) != 0)
    opts.push_back(
        {TCPOPT_WINDOW, static_cast<std::uint32_t>(t.snd_wscale) | (std::uint32_t{t.rcv_wscale} << 16)});
  if ((t.options & TCPI_OPT_TIMESTAMPS) != 0) opts.push_back({TCPOPT_TIMESTAMP, 0});
  if ((t.options & TCPI_OPT_SACK) != 0) opts.push_back({TCPOPT_SACK_PERMITTED, 0});
  RETURN_IF_ERROR(Set(s, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts.data(),
                      static_cast<socklen_t>(opts.size() * sizeof(tcp_repair_opt)), what,
                      "TCP_REPAIR_OPTIONS"));
  if ((t.options & TCPI_OPT_TIMESTAMPS) != 0)
    RETURN_IF_ERROR(
        Set(s, IPPROTO_TCP, TCP_TIMESTAMP, &t.timestamp, sizeof t.timestamp, what, "TCP_TIMESTAMP"));
  RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, what, "TCP_REPAIR_QUEUE"));
  RETURN_IF_ERROR(WriteQueue(s, t.recvq, what));
  RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, what, "TCP_REPAIR_QUEUE"));
  RETURN_IF_ERROR(WriteQueue(s, std::string_view(t.sendq).substr(0, t.sendq.size() - t.unsent), what));
  tcp_repair_window w = {t.snd_wl1, t.snd_wnd, t.max_window, t.rcv_wnd, t.rcv_wup};
  RETURN_IF_ERROR(Set(s, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof w, what, "TCP_REPAIR_WINDOW"));
  // Closed by the process (FIN_WAIT2): its FIN goes into the send queue as
  // sent (repair mode with the send queue selected sends nothing), under the
  // number the peer acknowledged. The socket is in FIN_WAIT1 until the FIN's
  // retransmission, once the lock lifts, draws the peer's acknowledgement
  // again; then FIN_WAIT2 as before.
  if (t.write_shut) {
    RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, what, "TCP_REPAIR_QUEUE"));
    if (::shutdown(s, SHUT_WR) != 0)
      return PosixError("shutdown(SHUT_WR) of a connection the process had closed", what, errno);
  }
  return SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, what, "TCP_REPAIR_QUEUE");
}

}  // namespace

const char* TcpStateName(int st) {
  static const char* const names[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                      "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                      "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
  return st >= 0 && st < 12 ? names[st] : "?";
}

Status RefuseUrgentData(int s, const InetSocket& u, const std::string& what) {
  // Repair mode saves the queues but not the urgent pointer: a byte sent
  // with MSG_OOB and not yet read would come back as an ordinary one, or be
  // lost. (With SO_OOBINLINE it is in the queue, and kept as data.)
  char b = 0;
  if (!u.oobinline && ::recv(s, &b, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT) == 1)
    return NotSupported(what +
                        ": a TCP connection with urgent (out-of-band, MSG_OOB) data not yet read; "
                        "ckpt cannot keep urgent data: dump again once the process has read it");
  return Status::Ok();
}

Status EnterRepair(int s) {
  return SetInt(s, IPPROTO_TCP, TCP_REPAIR, 1, "a TCP connection", "TCP_REPAIR");
}

Status LeaveRepair(int s) {
  return SetInt(s, IPPROTO_TCP, TCP_REPAIR, 0, "a TCP connection", "TCP_REPAIR");
}

Status ReadTcpRepair(int s, const std::string& what, TcpRepair* t) {
  tcp_info ti = {};
  socklen_t len = sizeof ti;
  if (::getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return PosixError("TCP_INFO", what, errno);
  if (!TcpStateSaved(ti.tcpi_state)) {
    return NotSupported(what + " is a TCP connection in state " + TcpStateName(ti.tcpi_state) + " (" +
                        kTcpStatesSaved + ")");
  }
  t->write_shut = ti.tcpi_state == kTcpFinWait2;
  // CLOSE_WAIT, or an established connection whose receive side is shut
  // (POLLRDHUP): what a restore makes of CLOSE_WAIT, dumped again.
  pollfd p = {s, POLLRDHUP, 0};
  t->read_shut = ti.tcpi_state == kTcpCloseWait || (::poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP) != 0);
  t->options =
      static_cast<std::uint8_t>(ti.tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE));
  t->snd_wscale = ti.tcpi_snd_wscale;
  t->rcv_wscale = ti.tcpi_rcv_wscale;
  RETURN_IF_ERROR(GetU32(s, TCP_MAXSEG, &t->mss, what, "TCP_MAXSEG"));
  RETURN_IF_ERROR(GetU32(s, TCP_TIMESTAMP, &t->timestamp, what, "TCP_TIMESTAMP"));
  tcp_repair_window w = {};
  len = sizeof w;
  if (::getsockopt(s, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &len) != 0)
    return PosixError("getsockopt TCP_REPAIR_WINDOW", what, errno);
  t->snd_wl1 = w.snd_wl1;
  t->snd_wnd = w.snd_wnd;
  t->max_window = w.max_window;
  t->rcv_wnd = w.rcv_wnd;
  t->rcv_wup = w.rcv_wup;
  int outq = 0, unsent = 0, inq = 0;
  if (::ioctl(s, SIOCOUTQ, &outq) != 0 || ::ioctl(s, SIOCOUTQNSD, &unsent) != 0 ||
      ::ioctl(s, SIOCINQ, &inq) != 0)
    return PosixError("queue sizes (SIOCOUTQ, SIOCINQ)", what, errno);
  if (unsent < 0 || unsent > outq) return Internal(what + ": unsent bytes outside the send queue");
  if (t->write_shut && outq != 0) return Internal(what + ": FIN_WAIT2 with bytes not acknowledged");
  t->unsent = static_cast<std::uint32_t>(unsent);
  RETURN_IF_ERROR(PeekQueue(s, TCP_SEND_QUEUE, outq, what, &t->snd_seq, &t->sendq));
  RETURN_IF_ERROR(PeekQueue(s, TCP_RECV_QUEUE, inq, what, &t->rcv_seq, &t->recvq));
  return SetInt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, what, "TCP_REPAIR_QUEUE");
}

Result<int> CreateConnectedSocket(const InetSocket& u) {
  std::string what = Describe(u);
  int s = ::socket(u.family, u.type | SOCK_CLOEXEC, u.protocol);
  if (s < 0) return PosixError("socket", what, errno);
  Status st;
  if (u.family == AF_INET6) st = SetInt(s, IPPROTO_IPV6, IPV6_V6ONLY, u.v6only ? 1 : 0, what, "IPV6_V6ONLY");
  if (st.ok() && u.nodelay) st = SetInt(s, IPPROTO_TCP, TCP_NODELAY, 1, what, "TCP_NODELAY");
  // getsockopt shows the doubled value the kernel keeps; set takes half.
  if (st.ok() && u.rcvbuf > 0)
    (void)SetInt(s, SOL_SOCKET, SO_RCVBUFFORCE, u.rcvbuf / 2, what, "SO_RCVBUFFORCE");
  if (st.ok() && u.sndbuf > 0)
    (void)SetInt(s, SOL_SOCKET, SO_SNDBUFFORCE, u.sndbuf / 2, what, "SO_SNDBUFFORCE");
  if (st.ok() && u.protocol == IPPROTO_TCP) {
    st = Reconnect(s, u, what);
    if (st.ok()) st = RefillConnection(s, u, what);
  } else if (st.ok()) {
    if (u.reuseaddr) st = SetInt(s, SOL_SOCKET, SO_REUSEADDR, 1, what, "SO_REUSEADDR");
    if (st.ok() && ::bind(s, reinterpret_cast<const sockaddr*>(u.addr.data()),
                          static_cast<socklen_t>(u.addr.size())) != 0)
      st = PosixError("bind", what, errno);
    if (st.ok() && ::connect(s, reinterpret_cast<const sockaddr*>(u.peer.data()),
                             static_cast<socklen_t>(u.peer.size())) != 0)
      st = PosixError("connect", what, errno);
    if (st.ok()) st = SetKeptOptions(s, u, what);
  }
  if (!st.ok()) {
    ::close(s);  // in repair mode: silently
    return st;
  }
  return s;
}

Status FinishConnection(int s, const InetSocket& u) {
  if (u.protocol != IPPROTO_TCP) return Status::Ok();
  std::string what = Describe(u);
  RETURN_IF_ERROR(SetInt(s, IPPROTO_TCP, TCP_REPAIR, 0, what, "TCP_REPAIR"));
  // Half-closed by the peer (CLOSE_WAIT): repair mode cannot make that
  // state, but its FIN is already counted in the receive sequence, so the
  // peer sees a connection that goes on as before; shutting the receive
  // side gives the process what CLOSE_WAIT gave it: the queued bytes, then
  // end-of-file (and EPOLLRDHUP), with its own side still open.
  if (u.tcp.read_shut && ::shutdown(s, SHUT_RD) != 0)
    return PosixError("shutdown(SHUT_RD) of a connection its peer had closed", what, errno);
  // Before the unsent bytes go back: a corked socket keeps them as it did.
  RETURN_IF_ERROR(SetKeptOptions(s, u, what));
  RETURN_IF_ERROR(
      WriteQueue(s, std::string_view(u.tcp.sendq).substr(u.tcp.sendq.size() - u.tcp.unsent), what));
  return SetInt(s, SOL_SOCKET, SO_REUSEADDR, u.reuseaddr ? 1 : 0, what, "SO_REUSEADDR");
}

}  // namespace ckpt::engine
