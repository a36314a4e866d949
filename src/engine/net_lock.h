// The network lock that keeps TCP connections whole while their sockets are
// out of any process: between the freeze of a dump and the end of its
// restore, nftables drops every packet of the connections involved (both
// directions), so the peer sees a pause and retransmits instead of meeting a
// reset. One nftables table per dump ("inet ckpt_<16 hex digits>") holds a
// rule per connection; it lives in ckpt's network namespace.
//
// The dump creates the table before it reads any connection, and deletes
// it when the processes run on (--leave-running, or a failed dump); a
// dump that kills the processes leaves it for the restore, whose name the
// image records. The restore creates it again (the image may be restored
// on another host, or the table removed meanwhile) and deletes it once the
// connections are out of repair mode. A failed restore keeps a table the
// dump left (the connections can still be restored) and removes one it made
// (an image restored while its processes still run must not stop them). `nft delete table inet NAME` ends it
// by hand (docs/engine.md, "TCP connections").
//
// Built with libnftables (Debian: libnftables-dev); without it,
// Available() is false and established connections are refused.
#pragma once

#include <string>
#include <vector>

#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

// True if this build can lock connections.
bool NetLockAvailable();

// A fresh table name: "ckpt_" and 16 random hex digits.
std::string NewNetLockName();

// Creates table `name` (replacing one of that name) dropping every packet
// of `connections` (established TCP sockets: addr and peer) in both
// directions. Atomic: one nftables transaction.
Status NetLock(const std::string& name, const std::vector<const InetSocket*>& connections);

// Whether table `name` exists (false without nftables).
bool NetLockExists(const std::string& name);

// Deletes table `name`; Ok if it is already gone.
Status NetUnlock(const std::string& name);

// The network namespace of `pid` ("net:[4026531840]"), "" if unknown.
std::string NetNamespaceOf(pid_t pid);

}  // namespace ckpt::engine
