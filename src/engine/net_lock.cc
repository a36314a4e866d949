#include "engine/net_lock.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

#include "engine/proc.h"
#include "platform/secure.h"

#if CKPT_HAVE_NFTABLES
#include <nftables/libnftables.h>
#endif

namespace ckpt::engine {

namespace {

// "ip saddr 10.0.0.1 tcp sport 80" for one end, as nftables reads it; an
// IPv4-mapped IPv6 address is matched as the IPv4 packet it travels in.
std::string Match(const std::string& a, const char* dir) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(a[i])); };
  std::string port = std::to_string(byte(2) << 8 | byte(3));
  char text[64];
  bool mapped = a.size() == 28 && byte(18) == 0xff && byte(19) == 0xff;
  for (int i = 8; mapped && i < 18; ++i) mapped = byte(i) == 0;
  if (a.size() == 16 || mapped) {  // sockaddr_in's address at 4, a mapped one's last 4 bytes at 20
    std::size_t at = mapped ? 20 : 4;
    std::snprintf(text, sizeof text, "%u.%u.%u.%u", byte(at), byte(at + 1), byte(at + 2), byte(at + 3));
    return std::string("ip ") + dir + "addr " + text + " tcp " + dir + "port " + port;
  }
  std::string v6;
  for (int i = 0; i < 8; ++i) {
    std::snprintf(text, sizeof text, "%s%x", i ? ":" : "", byte(8 + 2 * i) << 8 | byte(9 + 2 * i));
    v6 += text;
  }
  return std::string("ip6 ") + dir + "addr " + v6 + " tcp " + dir + "port " + port;
}

#if CKPT_HAVE_NFTABLES
Status Run(const std::string& commands, const std::string& what) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return Internal("nftables: no context for " + what);
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  int rc = nft_run_cmd_from_buffer(ctx, commands.c_str());
  std::string err = rc == 0 ? "" : nft_ctx_get_error_buffer(ctx);
  nft_ctx_free(ctx);
  if (rc != 0) {
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return FailedPrecondition("nftables refused to " + what + ": " + err);
  }
  return Status::Ok();
}
#endif

}  // namespace

bool NetLockAvailable() {
  return CKPT_HAVE_NFTABLES != 0;
}

std::string NewNetLockName() {
  unsigned char r[8] = {};
  if (!platform::RandomBytes(r, sizeof r).ok()) {
    std::uint64_t t =
        static_cast<std::uint64_t>(::getpid()) << 32 ^ static_cast<std::uint64_t>(::time(nullptr));
    std::memcpy(r, &t, sizeof r);
  }
  std::string n = "ckpt_";
  char h[3];
  for (unsigned char c : r) {
    std::snprintf(h, sizeof h, "%02x", c);
    n += h;
  }
  return n;
}

Status NetLock(const std::string& name, const std::vector<const InetSocket*>& connections) {
#if CKPT_HAVE_NFTABLES
  // Added, then deleted, then made: one transaction that replaces any
  // table of that name. Priority -300 (raw): before connection tracking.
  std::string t = "inet " + name;
  std::string c = "add table " + t + "\ndelete table " + t + "\nadd table " + t + "\n" + "add chain " + t +
                  " in { type filter hook input priority -300; policy accept; }\n" + "add chain " + t +
                  " out { type filter hook output priority -300; policy accept; }\n";
  for (const InetSocket* s : connections) {
    c += "add rule " + t + " in " + Match(s->peer, "s") + " " + Match(s->addr, "d") + " drop\n";
    c += "add rule " + t + " out " + Match(s->addr, "s") + " " + Match(s->peer, "d") + " drop\n";
  }
  return Run(c, "lock the network for " + std::to_string(connections.size()) + " TCP connection(s) (table " +
                    t + ")");
#else
  (void)connections;
  return NotSupported("this ckpt was built without nftables: it cannot hold TCP connections (table " + name +
                      ")");
#endif
}

bool NetLockExists(const std::string& name) {
#if CKPT_HAVE_NFTABLES
  return Run("list table inet " + name + "\n", "list table " + name).ok();
#else
  (void)name;
  return false;
#endif
}

Status NetUnlock(const std::string& name) {
#if CKPT_HAVE_NFTABLES
  std::string t = "inet " + name;
  return Run("add table " + t + "\ndelete table " + t + "\n", "remove the network lock (table " + t + ")");
#else
  (void)name;
  return Status::Ok();
#endif
}

std::string NetNamespaceOf(pid_t pid) {
  auto l = ReadLink(pid == 0 ? std::string("/proc/self/ns/net") : ProcPath(pid, "ns/net"));
  return l.ok() ? *l : "";
}

}  // namespace ckpt::engine
