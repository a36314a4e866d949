// Unix socket pairs whose both ends the dumped processes hold: connected,
// unbound stream, datagram and seqpacket sockets (socketpair(),
// multiprocessing.Pipe(), asyncio's self-pipe). Dump: sock_diag (netlink)
// says each socket's type, state, peer and name; the bytes queued for each
// end are read without taking them (MSG_PEEK with SO_PEEK_OFF, on a copy of
// the descriptor from pidfd_getfd), message by message. Restore: each pair
// is created once with socketpair() and its queues written back through the
// other end, then passed like any descriptor. Any other socket — bound,
// listening, TCP/UDP, a peer outside the dumped set, shut down, or file
// descriptors in flight (SCM_RIGHTS) — is refused. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/model.h"
#include "image/reader.h"
#include "util/status.h"

namespace ckpt::engine {

// What sock_diag says about one Unix socket.
struct UnixDiag {
  std::uint32_t ino = 0, peer = 0;
  std::uint8_t type = 0, state = 0, shutdown = 0;
  std::string name;           // bound path or abstract name ("@..."), "" if unbound
  std::uint32_t rqueue = 0;   // a listening socket: the connections waiting
  std::uint32_t wqueue = 0;   // a listening socket: its backlog
  std::uint32_t vfs_ino = 0;  // bound to a path: the socket file's inode
};

// Every Unix socket of this network namespace, by inode.
Result<std::map<std::uint32_t, UnixDiag>> ListUnixSockets();

// From what /proc and sock_diag show (no freeze): why socket `ino`, held
// as descriptor `fd` of `pid`, cannot be dumped when the dumped processes
// hold the sockets `inside`; "" if it can.
// A peer outside that is bound to a name in `external` is accepted when
// nothing is queued for this end to read (--external-unix).
std::string SocketProblem(pid_t pid, int fd, std::uint32_t ino, const std::map<std::uint32_t, UnixDiag>& all,
                          const std::set<std::uint32_t>& inside,
                          const std::vector<std::string>& external = {});

// In ckpt: a socket of `s`'s type connected to its outside peer's name again.
Result<int> ReconnectExternalUnix(const UnixSocket& s);

// Reads socket descriptor `fd` of frozen process `pid` (inode `ino`).
Result<UnixSocket> DumpUnixSocket(pid_t pid, int fd, std::uint32_t ino, const UnixDiag& d);

// Reads listening socket descriptor `fd` of frozen process `pid`.
Result<UnixListener> DumpUnixListener(pid_t pid, int fd, const UnixDiag& d);

// In ckpt: a socket like `l`, bound to its name and listening, close-on-exec.
// A socket file left at the path by the dumped process is replaced, one a
// live process listens on is not (the restore fails, naming it).
Result<int> CreateUnixListener(const UnixListener& l);

// The bytes queued for socket descriptor `fd` of `pid` to read, as a blob:
// each message as u32 length then bytes (a stream socket: one message).
// Refuses descriptors in flight (SCM_RIGHTS). Takes nothing from the queue.
Result<std::string> PeekSocketQueue(pid_t pid, int fd);

// The blob name of the bytes queued for socket `ino`.
std::string SocketBlobName(std::uint32_t ino);

// Restore side: the pairs, created in ckpt on first use. Owns the ends.
class SocketTable {
 public:
  SocketTable() = default;
  SocketTable(const SocketTable&) = delete;
  SocketTable& operator=(const SocketTable&) = delete;
  ~SocketTable() { CloseAll(); }
  // ckpt's descriptor of end `s` (its pair created and refilled from the
  // image's blobs on first use).
  Result<int> End(const UnixSocket& s, const image::ImageReader& r);
  // Closes ckpt's ends once the members hold theirs.
  void CloseAll();

 private:
  std::map<std::uint32_t, int> ends_;  // inode -> ckpt's descriptor
};

}  // namespace ckpt::engine
