// One sock_diag (NETLINK_SOCK_DIAG) dump request: every answer message goes
// to a callback. Used for Unix sockets (peers, names) and listening TCP
// sockets (backlog). Stateless.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <functional>

#include "util/status.h"

namespace ckpt::engine {

// Sends `req` (a request struct without its netlink header) as an
// NLM_F_DUMP SOCK_DIAG_BY_FAMILY request and calls `each` with every answer
// message's payload and its length, until the dump is done.
Status SockDiagDump(const void* req, std::size_t req_len, const std::function<void(const void*, int)>& each);

}  // namespace ckpt::engine
