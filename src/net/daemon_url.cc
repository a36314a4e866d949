// ckpt:// destinations: the URL and the client side of a connection to the
// daemon. Built everywhere; without TLS (Windows, cross builds) the
// connection itself is NotSupported (tls_none.cc).
#include <cstdlib>

#include "net/tls.h"

namespace ckpt::net {

Result<DaemonUrl> ParseDaemonUrl(const std::string& url) {
  const std::string scheme = "ckpt://";
  if (url.rfind(scheme, 0) != 0) return InvalidArgument("not a ckpt:// destination: " + url);
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const std::string form = " (ckpt://host:port)";
  if (rest.find_first_of("@/?#") != std::string::npos)
    return InvalidArgument("malformed destination " + url + form);
  DaemonUrl d;
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return InvalidArgument("unclosed [ in " + url);
    d.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return InvalidArgument("malformed destination " + url + form);
      port = rest.substr(close + 2);
      if (port.empty()) return InvalidArgument("no port after ':' in " + url + form);
    }
  } else {
    auto colon = rest.find(':');
    if (colon != std::string::npos && rest.find(':', colon + 1) != std::string::npos)
      return InvalidArgument("an IPv6 address goes in brackets: ckpt://[ADDR]:port, not " + url);
    d.host = rest.substr(0, colon);
    if (colon != std::string::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return InvalidArgument("no port after ':' in " + url + form);
    }
  }
  if (d.host.empty() || d.host[0] == '-') return InvalidArgument("no host in " + url + form);
  d.port = kDefaultDaemonPort;
  if (!port.empty()) {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) return InvalidArgument("bad port '" + port + "' in " + url);
    d.port = static_cast<int>(p);
  }
  return d;
}

Result<std::unique_ptr<Stream>> ConnectDaemon(const std::string& url, const TlsFiles& f, bool insecure) {
  ASSIGN_OR_RETURN(DaemonUrl d, ParseDaemonUrl(url));
  if (!TlsAvailable()) {
    return NotSupported(
        "ckpt:// destinations need TLS, which this build of ckpt lacks (Linux builds with "
        "OpenSSL have it); use ssh:// instead");
  }
  if (insecure) return ConnectPlain(d.host, d.port);
  if (!f.complete()) {
    std::string missing;
    for (auto [name, value] : {std::pair{"--cert", &f.cert}, {"--key", &f.key}, {"--ca", &f.ca}})
      if (value->empty()) missing += (missing.empty() ? "" : ", ") + std::string(name);
    return InvalidArgument("ckpt://host:port needs --cert, --key and --ca (or --insecure-no-tls); missing " +
                           missing);
  }
  return ConnectTls(d.host, d.port, f);
}

}  // namespace ckpt::net
