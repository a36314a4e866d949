// Mutual TLS 1.3 over TCP with OpenSSL 3 (Linux builds). Sockets stay
// non-blocking: every SSL call is made under a mutex (one thread may read
// while another writes, as Stream promises; OpenSSL does not allow that on
// one SSL object unguarded) and the waiting — poll() against the read
// timeout — is done outside it.
#include "net/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "net/tcp.h"

namespace ckpt::net {

namespace {

// OpenSSL's queued reasons, "certificate verify failed; ...", and clears the queue.
std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    std::string one = r != nullptr ? r : "error " + std::to_string(e);
    if (out.find(one) == std::string::npos) out += (out.empty() ? "" : "; ") + one;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// A file this side needs: readable, or the reason why not.
Status CheckReadable(const std::string& what, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound(what + " " + path + ": " + std::strerror(errno));
  std::fclose(f);
  return Status::Ok();
}

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

// A context for either side: TLS 1.3 only, our certificate and key (checked
// to belong together), the peer verified against the CA, no tickets.
Result<CtxPtr> NewContext(bool server, const TlsFiles& f) {
  if (!f.complete()) return InvalidArgument("TLS needs a certificate, its key and a CA certificate");
  RETURN_IF_ERROR(CheckReadable("certificate", f.cert));
  RETURN_IF_ERROR(CheckReadable("key", f.key));
  RETURN_IF_ERROR(CheckReadable("CA certificate", f.ca));
  ::signal(SIGPIPE, SIG_IGN);  // a peer that goes away gives EPIPE, not the end of ckpt
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return Internal("SSL_CTX_new: " + SslErrors());
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_use_certificate_chain_file(c, f.cert.c_str()) != 1)
    return InvalidArgument("certificate " + f.cert + ": " + SslErrors());
  if (SSL_CTX_use_PrivateKey_file(c, f.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string why = SslErrors();
    if (why.find("mismatch") != std::string::npos)
      return InvalidArgument("key " + f.key + " does not belong to certificate " + f.cert + " (" + why + ")");
    return InvalidArgument("key " + f.key + ": " + why);
  }
  if (SSL_CTX_check_private_key(c) != 1)
    return InvalidArgument("key " + f.key + " does not belong to certificate " + f.cert + ": " + SslErrors());
  if (SSL_CTX_load_verify_locations(c, f.ca.c_str(), nullptr) != 1)
    return InvalidArgument("CA certificate " + f.ca + ": " + SslErrors());
  if (server) {
    SSL_CTX_set_num_tickets(c, 0);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(f.ca.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(c, names);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  }
  ERR_clear_error();
  return ctx;
}

std::string NameText(X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string s(data != nullptr && n > 0 ? data : "", n > 0 ? static_cast<std::size_t>(n) : 0);
  BIO_free(bio);
  return s;
}

std::string CommonName(X509_NAME* name) {
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
  if (n < 0) return "";
  std::string s(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return s;
}

class TlsStream final : public TlsPeer {
 public:
  TlsStream(SSL* ssl, int fd, std::string describe, std::string address)
      : ssl_(ssl), fd_(fd), describe_(std::move(describe)), address_(std::move(address)) {}
  ~TlsStream() override {
    CloseWrite();
    SSL_free(ssl_);
    tcp::Close(fd_);
  }

  // The handshake (either side), bounded by `deadline`.
  Status Handshake(tcp::Deadline deadline) {
    while (true) {
      ERR_clear_error();
      int r = SSL_do_handshake(ssl_);
      if (r == 1) break;
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        RETURN_IF_ERROR(tcp::Wait(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline,
                                  "TLS handshake with " + describe_));
        continue;
      }
      return HandshakeError(e);
    }
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (cert != nullptr) {
      subject_ = NameText(X509_get_subject_name(cert));
      cn_ = CommonName(X509_get_subject_name(cert));
    }
    return Status::Ok();
  }

  Status Write(const void* data, std::size_t size) override {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      std::size_t n = 0;
      int e = SSL_ERROR_NONE;
      std::string why;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (write_closed_) return FailedPrecondition("writing to " + describe_ + " after closing it");
        ERR_clear_error();
        if (SSL_write_ex(ssl_, p, size, &n) != 1) {
          e = SSL_get_error(ssl_, 0);
          why = Reason(e);
        }
      }
      if (e == SSL_ERROR_NONE) {
        p += n;
        size -= n;
      } else if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        RETURN_IF_ERROR(tcp::Wait(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, tcp::Deadline::max(),
                                  "writing to " + describe_));
      } else {
        return IoError("write to " + describe_ + ": " + why);
      }
    }
    return Status::Ok();
  }

  Status Read(void* data, std::size_t size, int timeout_ms) override {
    char* p = static_cast<char*>(data);
    tcp::Deadline deadline = tcp::After(timeout_ms);
    while (size > 0) {
      std::size_t n = 0;
      int e = SSL_ERROR_NONE;
      std::string why;
      {
        // Bytes OpenSSL already holds (SSL_pending) come out here without a wait.
        std::lock_guard<std::mutex> lock(mu_);
        ERR_clear_error();
        if (SSL_read_ex(ssl_, p, size, &n) != 1) {
          e = SSL_get_error(ssl_, 0);
          why = Reason(e);
        }
      }
      if (e == SSL_ERROR_NONE) {
        p += n;
        size -= n;
      } else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        Status st = tcp::Wait(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, describe_);
        if (st.code() == Code::kTimeout)
          return Timeout(describe_ + " sent nothing for " + std::to_string(timeout_ms / 1000) + " s");
        RETURN_IF_ERROR(st);
      } else if (e == SSL_ERROR_ZERO_RETURN || why.find("unexpected eof") != std::string::npos) {
        return NotFound(describe_ + " closed the connection");
      } else {
        return IoError("read from " + describe_ + ": " + why);
      }
    }
    return Status::Ok();
  }

  // Sends close_notify; reading goes on (TLS 1.3 half-close).
  void CloseWrite() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (write_closed_) return;
    write_closed_ = true;
    ERR_clear_error();
    if (SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);  // best effort: non-blocking, no wait for the reply
    ERR_clear_error();
  }

  std::string Describe() const override { return describe_; }
  std::string subject() const override { return subject_; }
  std::string common_name() const override { return cn_; }
  std::string address() const override { return address_; }
  void set_describe(std::string d) { describe_ = std::move(d); }
  void Linger() { tcp::Linger(fd_, 1000); }

 private:
  // Why an SSL call failed; an alert from the peer says it refused us.
  std::string Reason(int e) {
    if (e == SSL_ERROR_SYSCALL) {
      int err = errno;
      std::string q = SslErrors();
      if (err == ECONNRESET || err == EPIPE)
        return std::string(std::strerror(err)) +
               " (the peer closed the connection; a daemon that refused this "
               "client's certificate says why in its log)";
      return err != 0 ? std::strerror(err) : q == "unknown TLS error" ? "connection reset" : q;
    }
    std::string r = SslErrors();
    if (r.find("alert") != std::string::npos) r = "the peer refused the TLS connection (" + r + ")";
    return r;
  }

  Status HandshakeError(int e) {
    std::string why = Reason(e);
    long v = SSL_get_verify_result(ssl_);
    if (v != X509_V_OK) why += " (" + std::string(X509_verify_cert_error_string(v)) + ")";
    return FailedPrecondition("TLS handshake with " + describe_ + " failed: " + why);
  }

  SSL* ssl_;
  int fd_;
  std::string describe_, address_, subject_, cn_;
  std::mutex mu_;
  bool write_closed_ = false;
};

// A plain TCP peer: a Stream over the blocking socket, with an address.
class PlainPeer final : public TlsPeer {
 public:
  PlainPeer(int fd, std::string describe, std::string address)
      : s_(NewFdStream(fd, fd, std::move(describe), true)), address_(std::move(address)) {}
  Status Write(const void* d, std::size_t n) override { return s_->Write(d, n); }
  Status Read(void* d, std::size_t n, int t) override { return s_->Read(d, n, t); }
  void CloseWrite() override { s_->CloseWrite(); }
  std::string Describe() const override { return s_->Describe(); }
  std::string subject() const override { return ""; }
  std::string common_name() const override { return ""; }
  std::string address() const override { return address_; }

 private:
  std::unique_ptr<Stream> s_;
  std::string address_;
};

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

bool TlsAvailable() {
  return true;
}

Result<std::unique_ptr<Stream>> ConnectTls(const std::string& host, int port, const TlsFiles& f,
                                           int timeout_ms) {
  std::string url = "ckpt://" + tcp::HostPort(host, port);
  ASSIGN_OR_RETURN(CtxPtr ctx, NewContext(false, f));
  tcp::Deadline deadline = tcp::After(timeout_ms);
  ASSIGN_OR_RETURN(int fd, tcp::Connect(host, port, timeout_ms));
  SSL* ssl = SSL_new(ctx.get());
  if (ssl == nullptr) {
    tcp::Close(fd);
    return Internal("SSL_new: " + SslErrors());
  }
  auto s = std::make_unique<TlsStream>(ssl, fd, url, tcp::HostPort(host, port));
  SSL_set_fd(ssl, fd);
  // The daemon's certificate must name the host we dialled.
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  bool named = IsIpAddress(host) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
                                 : SSL_set1_host(ssl, host.c_str()) == 1 &&
                                       SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
  if (!named)
    return InvalidArgument("cannot check the certificate of " + url + " against its name: " + SslErrors());
  SSL_set_connect_state(ssl);
  RETURN_IF_ERROR(s->Handshake(deadline));
  if (!s->common_name().empty()) s->set_describe(url + " (CN=" + s->common_name() + ")");
  return std::unique_ptr<Stream>(std::move(s));
}

Result<std::unique_ptr<Stream>> ConnectPlain(const std::string& host, int port, int timeout_ms) {
  ASSIGN_OR_RETURN(int fd, tcp::Connect(host, port, timeout_ms));
  Status st = tcp::SetBlocking(fd, true);
  if (!st.ok()) {
    tcp::Close(fd);
    return st;
  }
  ::signal(SIGPIPE, SIG_IGN);
  return NewFdStream(fd, fd, "ckpt://" + tcp::HostPort(host, port) + " (no TLS)", true);
}

Result<std::unique_ptr<TlsListener>> TlsListener::Listen(const std::string& addr, int port, const TlsFiles& f,
                                                         bool insecure_no_tls) {
  CtxPtr ctx;
  if (!insecure_no_tls) {
    ASSIGN_OR_RETURN(ctx, NewContext(true, f));
  }
  ::signal(SIGPIPE, SIG_IGN);
  int bound = 0;
  ASSIGN_OR_RETURN(int fd, tcp::Listen(addr, port, &bound));
  return std::unique_ptr<TlsListener>(new TlsListener(fd, bound, ctx.release()));
}

TlsListener::~TlsListener() {
  tcp::Close(fd_);
  SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

Result<std::unique_ptr<TlsPeer>> TlsListener::Accept(int timeout_ms, int handshake_timeout_ms) {
  std::string addr;
  ASSIGN_OR_RETURN(int fd, tcp::Accept(fd_, timeout_ms, &addr));
  if (ctx_ == nullptr) {
    Status st = tcp::SetBlocking(fd, true);
    if (!st.ok()) {
      tcp::Close(fd);
      return st;
    }
    return std::unique_ptr<TlsPeer>(std::make_unique<PlainPeer>(fd, "peer " + addr + " (no TLS)", addr));
  }
  ERR_clear_error();
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx_));
  if (ssl == nullptr) {
    tcp::Close(fd);
    return Internal("SSL_new: " + SslErrors());
  }
  auto s = std::make_unique<TlsStream>(ssl, fd, "peer " + addr, addr);
  SSL_set_fd(ssl, fd);
  SSL_set_accept_state(ssl);
  Status st = s->Handshake(tcp::After(handshake_timeout_ms));
  if (!st.ok()) {
    s->Linger();  // the client reads our alert, not a reset
    return st;
  }
  s->set_describe("peer " + addr + " (" + s->subject() + ")");
  return std::unique_ptr<TlsPeer>(std::move(s));
}

}  // namespace ckpt::net
