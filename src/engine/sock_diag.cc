#include "engine/sock_diag.h"

#include <errno.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "platform/posix_util.h"

namespace ckpt::engine {

Status SockDiagDump(const void* req, std::size_t req_len, const std::function<void(const void*, int)>& each) {
  int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return platform::PosixError("socket(NETLINK_SOCK_DIAG)", "", errno);
  std::vector<char> msg(NLMSG_LENGTH(req_len));
  auto* h = reinterpret_cast<nlmsghdr*>(msg.data());
  h->nlmsg_len = static_cast<std::uint32_t>(msg.size());
  h->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  std::memcpy(NLMSG_DATA(h), req, req_len);
  Status st;
  if (::send(nl, msg.data(), msg.size(), 0) != static_cast<ssize_t>(msg.size()))
    st = platform::PosixError("send", "sock_diag request", errno);
  alignas(nlmsghdr) char buf[32768];
  for (bool done = false; st.ok() && !done;) {
    ssize_t n = ::recv(nl, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = platform::PosixError("recv", "sock_diag answer", n < 0 ? errno : EPROTO);
      break;
    }
    int len = static_cast<int>(n);
    for (auto* a = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(a, len); a = NLMSG_NEXT(a, len)) {
      if (a->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (a->nlmsg_type == NLMSG_ERROR) {
        st = platform::PosixError("sock_diag", "", -static_cast<const nlmsgerr*>(NLMSG_DATA(a))->error);
        break;
      }
      each(NLMSG_DATA(a), static_cast<int>(NLMSG_PAYLOAD(a, 0)));
    }
  }
  ::close(nl);
  return st;
}

}  // namespace ckpt::engine
