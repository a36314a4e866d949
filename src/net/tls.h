// TCP connections for the `ckpt://` transport and the daemon `ckptd`
// (docs/ckptd.md): mutual TLS 1.3 with X.509 certificates (OpenSSL 3), or
// plain TCP when `--insecure-no-tls` / `insecure_no_tls = true` asks for it
// explicitly. Linux builds with OpenSSL only (TlsAvailable()); elsewhere
// every call here is NotSupported.
//
// Both sides verify: the client checks the daemon's certificate against its
// CA and the host name (or IP address) it dialled; the daemon requires a
// client certificate signed by its CA and exposes the certificate's subject
// for its authorisation. No session tickets, no resumption.
#pragma once

#include <memory>
#include <string>

#include "net/stream.h"
#include "util/status.h"

namespace ckpt::net {

// PEM files: this side's certificate (chain) and private key, and the CA
// certificate(s) the peer's certificate must chain to.
struct TlsFiles {
  std::string cert, key, ca;
  bool complete() const { return !cert.empty() && !key.empty() && !ca.empty(); }
};

// False in builds without TLS (Windows, cross builds without OpenSSL).
bool TlsAvailable();

// A connection the listener accepted (TLS established, or plain TCP).
class TlsPeer : public Stream {
 public:
  // The client certificate's subject, RFC 2253 ("CN=alice,O=lab"); "" for a
  // plain-TCP peer.
  virtual std::string subject() const = 0;
  // The subject's common name alone ("alice"); "" if none.
  virtual std::string common_name() const = 0;
  // "10.0.0.1:40112".
  virtual std::string address() const = 0;
};

// Connects to host:port and completes the TLS 1.3 handshake, presenting
// f.cert/f.key and verifying the server's certificate against f.ca and
// `host` (DNS name: SAN, else CN; IP address: SAN iPAddress). The whole
// connection attempt is bounded by `timeout_ms`.
Result<std::unique_ptr<Stream>> ConnectTls(const std::string& host, int port, const TlsFiles& f,
                                           int timeout_ms = 30000);
// Plain TCP, no authentication, no encryption: only for --insecure-no-tls.
Result<std::unique_ptr<Stream>> ConnectPlain(const std::string& host, int port, int timeout_ms = 30000);

class TlsListener {
 public:
  // Listens on addr:port ("" or "*": every address; port 0: one the OS
  // picks). With `insecure_no_tls` the files are ignored and peers are plain
  // TCP; else the certificate, key and CA are loaded (and checked to match)
  // here, so a bad file is reported before the first client.
  static Result<std::unique_ptr<TlsListener>> Listen(const std::string& addr, int port, const TlsFiles& f,
                                                     bool insecure_no_tls = false);
  ~TlsListener();
  TlsListener(const TlsListener&) = delete;
  TlsListener& operator=(const TlsListener&) = delete;
  int port() const { return port_; }
  bool tls() const { return ctx_ != nullptr; }
  // Waits up to `timeout_ms` (-1: forever) for a connection: Timeout when
  // none came. Then the TLS handshake, bounded by `handshake_timeout_ms`;
  // its failure (no client certificate, one the CA did not sign, not TLS)
  // is an error naming the peer's address and OpenSSL's reason. Either way
  // the listener serves the next client.
  Result<std::unique_ptr<TlsPeer>> Accept(int timeout_ms, int handshake_timeout_ms = 20000);

 private:
  TlsListener(int fd, int port, void* ctx) : fd_(fd), port_(port), ctx_(ctx) {}
  int fd_;
  int port_;
  void* ctx_;  // SSL_CTX*, or null for plain TCP
};

// A ckpt:// destination.
struct DaemonUrl {
  std::string host;
  int port = 0;
};
inline constexpr int kDefaultDaemonPort = 7070;
// ckpt://host[:port] (IPv6 literals in brackets; default port 7070).
Result<DaemonUrl> ParseDaemonUrl(const std::string& url);

// The client side of `ckpt migrate --to ckpt://host:port`: mutual TLS with
// `f` (all three files are needed), or plain TCP when `insecure`. The
// stream's Describe() is "ckpt://host:port" (plus " (no TLS)").
Result<std::unique_ptr<Stream>> ConnectDaemon(const std::string& url, const TlsFiles& f, bool insecure);

}  // namespace ckpt::net
