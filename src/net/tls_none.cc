// Builds without TLS (Windows, cross builds): ckpt:// is NotSupported.
#include "net/tls.h"

namespace ckpt::net {

namespace {
Status NoTls() {
  return NotSupported(
      "this build of ckpt has no TLS (the ckpt:// transport and ckptd are Linux builds with "
      "OpenSSL); use ssh:// instead");
}
}  // namespace

bool TlsAvailable() {
  return false;
}

Result<std::unique_ptr<Stream>> ConnectTls(const std::string&, int, const TlsFiles&, int) {
  return NoTls();
}

Result<std::unique_ptr<Stream>> ConnectPlain(const std::string&, int, int) {
  return NoTls();
}

Result<std::unique_ptr<TlsListener>> TlsListener::Listen(const std::string&, int, const TlsFiles&, bool) {
  return NoTls();
}

TlsListener::~TlsListener() = default;

Result<std::unique_ptr<TlsPeer>> TlsListener::Accept(int, int) {
  return NoTls();
}

}  // namespace ckpt::net
