// The daemon's loop: accept a client (TLS handshake, its certificate
// verified), authorise its subject against the [peer] sections, and run the
// shared receiving side (net::Receive) for it with the daemon's program map.
// One migration at a time (docs/ckptd.md, "Connections").
#include "serve.h"

#include <cstdio>
#include <filesystem>

#include "net/receive.h"
#if CKPT_HAVE_ENGINE
#include "net/engine_restore.h"
#endif
#include "net/wire.h"
#include "platform/env.h"
#include "platform/process.h"

namespace ckpt::ckptd {

namespace {

namespace fs = std::filesystem;

void Log(const std::string& m) {
  std::fprintf(stderr, "ckptd: %s\n", m.c_str());
  std::fflush(stderr);
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// A client no [peer] section lets in: it hears why (an ERROR frame after
// its HELLO, so the refusal is read before the connection closes).
void Refuse(net::TlsPeer* peer, const std::string& who) {
  auto hello = net::RecvFrame(peer, 10 * 1000);
  std::string msg = "the daemon's configuration does not allow " + who + " to send migrations";
  nlohmann::json e = {
      {"step", "authorisation"}, {"message", msg}, {"host", platform::Env::Default()->HostName()}};
  net::SendJson(peer, net::FrameType::kError, e).IgnoreError();
  peer->CloseWrite();
  for (int i = 0; i < 4 && hello.ok(); ++i) {  // until the client closes (bounded)
    if (!net::RecvFrame(peer, 500).ok()) break;
  }
  Log("refused " + peer->address() + ": " + msg);
}

void Handle(const Config& c, net::TlsPeer* peer, bool tls) {
  std::string who = tls ? "peer " + peer->subject() : "unauthenticated peer (no TLS)";
  const Peer* p = FindPeer(c, peer->subject(), peer->common_name(), tls);
  if (p == nullptr) return Refuse(peer, who);
  Log("connection from " + peer->address() + ", " + who + " (may send: " + Join(p->allow) + ")");
  net::ReceiveConfig rc;
  rc.spool = c.spool;
  rc.programs = c.programs;
  rc.run_recorded_programs = false;  // only what the program map names
  rc.kinds = p->allow;
  rc.cwd = c.workdir;
  rc.output = c.output;
  rc.keep = c.keep;
  rc.peer = who;
  rc.commit_timeout_s = c.commit_timeout_s;
#if CKPT_HAVE_ENGINE
  rc.restore_process = net::EngineRestorer();
#endif
  std::string prefix = "[" + peer->address() + "] ";
  rc.log = [prefix](const std::string& m) { Log(prefix + m); };
  Status st = net::Receive(peer, rc);
  if (!st.ok()) Log(prefix + "migration failed: " + st.message());
}

// The spool exists and only the daemon's user can read it (images hold
// the programs' memory).
Status PrepareSpool(const std::string& spool) {
  std::error_code ec;
  if (fs::is_directory(spool, ec)) return Status::Ok();
  fs::create_directories(spool, ec);
  if (ec) return IoError("create the spool " + spool + ": " + ec.message());
  fs::permissions(spool, fs::perms::owner_all, ec);
  if (ec) return IoError("chmod 0700 " + spool + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

int Serve(const Config& c) {
  platform::CatchTerminationRequests();
  Status st = PrepareSpool(c.spool);
  if (!st.ok()) {
    Log(st.message());
    return 1;
  }
  auto l = net::TlsListener::Listen(c.listen_addr, c.listen_port, c.tls, c.insecure_no_tls);
  if (!l.ok()) {
    Log("cannot listen: " + l.status().message());
    return 1;
  }
  net::TlsListener* listener = l->get();
  std::string where =
      (c.listen_addr.empty() ? std::string("*") : c.listen_addr) + ":" + std::to_string(listener->port());
  if (c.insecure_no_tls) {
    Log("WARNING: insecure_no_tls: no TLS, no authentication, no encryption; anyone who reaches " + where +
        " can send migrations as [peer \"*\"]");
  }
#if !CKPT_HAVE_ENGINE
  for (const auto& p : c.peers) {
    if (std::find(p.allow.begin(), p.allow.end(), "process") != p.allow.end()) {
      Log("note: this build has no transparent engine (native Linux x86-64 only): process migrations are "
          "refused");
      break;
    }
  }
#endif
  Log("listening on " + where +
      (c.insecure_no_tls ? " (plain TCP)" : " (TLS 1.3, client certificates from " + c.tls.ca + ")") +
      ", spool " + c.spool + ", " + std::to_string(c.programs.size()) + " programs, " +
      std::to_string(c.peers.size()) + " peers");
  while (platform::TerminationRequest() == 0) {
    // Programs and processes migrated here are this daemon's children once
    // let go: collect those that have ended (between migrations only).
    platform::ReapExitedChildren();
    auto peer = listener->Accept(500);
    if (!peer.ok()) {
      if (peer.status().code() != Code::kTimeout ||
          peer.status().message().find("handshake") != std::string::npos)
        Log("refused a connection: " + peer.status().message());
      continue;
    }
    Handle(c, peer->get(), listener->tls());
  }
  Log("stopping on " + platform::SignalName(platform::TerminationRequest()));
  return 0;
}

}  // namespace ckpt::ckptd
