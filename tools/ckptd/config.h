// ckptd's configuration file (docs/ckptd.md, "Configuration"): INI-like,
// `key = value` lines, `[program NAME]` and `[peer "SUBJECT"]` sections,
// `#` or `;` comments on their own lines. Everything it does not know is an
// error naming the file and line.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "net/tls.h"
#include "util/status.h"

namespace ckpt::ckptd {

// A [peer "SUBJECT"] section: who may send (the client certificate's
// subject, RFC 2253 as `openssl x509 -subject -nameopt RFC2253` prints it,
// or "CN=name" alone; "*" is any peer the CA vouches for) and what.
struct Peer {
  std::string subject;
  std::vector<std::string> allow;  // "program", "process", "group"
  int line = 0;
};

struct Config {
  std::string path;
  std::string listen_addr;  // "" : every address
  int listen_port = 0;
  std::string spool = "/var/spool/ckpt";
  net::TlsFiles tls;
  bool insecure_no_tls = false;
  std::string workdir;  // programs run here (else in the source's directory, if it exists here)
  std::string output;   // NAME.out and NAME.err go here (else the working directory)
  bool keep = false;    // keep received images in the spool
  int commit_timeout_s = 600;
  // Program name -> command words (launcher, then the binary).
  std::map<std::string, std::vector<std::string>> programs;
  std::vector<Peer> peers;
};

// The text of a config file, checked for syntax and consistency (no file
// system access). Errors are "PATH:LINE: ...".
Result<Config> ParseConfig(const std::string& text, const std::string& path);

// Reads and parses `path`, then checks what the file names: the TLS files
// are readable, every program's command is an executable here.
Result<Config> LoadConfig(const std::string& path);

// The [peer] section that lets this client in, or null. `tls`: the client
// presented a certificate the CA signed (then `subject` and `cn` are its
// subject and common name); plain TCP peers match only "*".
const Peer* FindPeer(const Config& c, const std::string& subject, const std::string& cn, bool tls);

// Words of a command line: whitespace separates, double quotes group
// (\" and \\ inside them).
Result<std::vector<std::string>> SplitWords(const std::string& s);

}  // namespace ckpt::ckptd
