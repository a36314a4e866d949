#include "config.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "platform/env.h"

namespace ckpt::ckptd {

namespace {

namespace fs = std::filesystem;

std::string Trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string Unquote(const std::string& s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

// "CN=a, O=b" and "CN=a,O=b" are the same subject.
std::string NormalSubject(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    if (s[i] == ',' && (i == 0 || s[i - 1] != '\\'))
      while (i + 1 < s.size() && s[i + 1] == ' ') ++i;
  }
  return Trim(out);
}

Result<bool> ParseBool(const std::string& v) {
  if (v == "true" || v == "yes" || v == "1") return true;
  if (v == "false" || v == "no" || v == "0") return false;
  return InvalidArgument("'" + v + "' is not true or false");
}

// "10.0.0.2:7070", "[::1]:7070", "*:7070", "ckpt.example.org:7070".
Status ParseListen(const std::string& v, Config* c) {
  std::string host, port;
  if (!v.empty() && v[0] == '[') {
    auto close = v.find(']');
    if (close == std::string::npos || close + 1 >= v.size() || v[close + 1] != ':')
      return InvalidArgument("listen wants ADDRESS:PORT ([IPv6]:PORT), not '" + v + "'");
    host = v.substr(1, close - 1);
    port = v.substr(close + 2);
  } else {
    auto colon = v.rfind(':');
    if (colon == std::string::npos || v.find(':') != colon)
      return InvalidArgument("listen wants ADDRESS:PORT (* for every address), not '" + v + "'");
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) return InvalidArgument("bad port in listen = " + v);
  c->listen_addr = host == "*" ? "" : host;
  c->listen_port = static_cast<int>(p);
  return Status::Ok();
}

Status ParseAllow(const std::string& v, Peer* p) {
  static const std::set<std::string> kKinds = {"program", "process", "group"};
  std::string item;
  for (std::size_t b = 0; b <= v.size();) {
    std::size_t e = v.find(',', b);
    if (e == std::string::npos) e = v.size();
    item = Trim(v.substr(b, e - b));
    if (!kKinds.count(item))
      return InvalidArgument("allow: '" + item + "' is not one of program, process, group");
    if (std::find(p->allow.begin(), p->allow.end(), item) == p->allow.end()) p->allow.push_back(item);
    b = e + 1;
  }
  return Status::Ok();
}

bool SafeProgramName(const std::string& n) {
  return !n.empty() && n.size() <= 128 && n != "." && n != ".." &&
         n.find_first_of("/\\:\" \t") == std::string::npos;
}

class Parser {
 public:
  explicit Parser(const std::string& path) { c_.path = path; }

  Status Line(const std::string& raw, int line) {
    line_ = line;
    std::string s = Trim(raw);
    if (s.empty() || s[0] == '#' || s[0] == ';') return Status::Ok();
    if (s[0] == '[') return Section(s);
    auto eq = s.find('=');
    if (eq == std::string::npos) return Err("expected 'key = value' or a [section], got '" + s + "'");
    std::string key = Trim(s.substr(0, eq)), value = Trim(s.substr(eq + 1));
    std::string where = section_.empty() ? std::string() : " in [" + section_ + "]";
    if (!seen_.insert(section_ + "\n" + key).second) return Err("'" + key + "' given twice" + where);
    if (value.empty()) return Err("'" + key + "' has no value");
    Status st = section_.empty()   ? TopKey(key, value)
                : program_.empty() ? PeerKey(key, value)
                                   : ProgramKey(key, value);
    return st.ok() ? st : Err(st.message());
  }

  Result<Config> Finish() {
    std::string file = c_.path;
    if (!have_listen_) return InvalidArgument(file + ": no 'listen = ADDRESS:PORT'");
    if (!c_.insecure_no_tls && !c_.tls.complete())
      return InvalidArgument(file +
                             ": cert, key and ca are required (mutual TLS); 'insecure_no_tls = true' "
                             "turns TLS off, for tests on a trusted network only");
    for (const auto& [name, line] : program_lines_)
      if (!c_.programs.count(name))
        return InvalidArgument(file + ":" + std::to_string(line) + ": [program " + name +
                               "] has no 'command ='");
    if (c_.peers.empty())
      return InvalidArgument(file + ": no [peer \"SUBJECT\"] section: the daemon would refuse every client");
    for (const auto& p : c_.peers) {
      if (p.allow.empty())
        return InvalidArgument(file + ":" + std::to_string(p.line) + ": [peer \"" + p.subject +
                               "\"] has no 'allow = program, process, group'");
    }
    if (c_.insecure_no_tls && FindPeer(c_, "", "", false) == nullptr)
      return InvalidArgument(file +
                             ": with insecure_no_tls clients have no certificates; only a [peer \"*\"] "
                             "section can let them in");
    return c_;
  }

 private:
  Status Err(const std::string& m) const {
    return InvalidArgument(c_.path + ":" + std::to_string(line_) + ": " + m);
  }

  Status Section(const std::string& s) {
    if (s.back() != ']') return Err("unclosed section header '" + s + "'");
    std::string in = Trim(s.substr(1, s.size() - 2));
    auto sp = in.find_first_of(" \t");
    std::string type = in.substr(0, sp), arg = sp == std::string::npos ? "" : Unquote(Trim(in.substr(sp)));
    if (type == "program") {
      if (!SafeProgramName(arg)) return Err("[program NAME]: '" + arg + "' is not a program name");
      program_ = arg;
      if (!program_lines_.emplace(arg, line_).second) return Err("[program " + arg + "] given twice");
    } else if (type == "peer") {
      if (arg.empty()) return Err("[peer \"SUBJECT\"] needs a certificate subject, e.g. [peer \"CN=node1\"]");
      program_.clear();
      for (const auto& p : c_.peers)
        if (NormalSubject(p.subject) == NormalSubject(arg)) return Err("[peer \"" + arg + "\"] given twice");
      c_.peers.push_back(Peer{arg, {}, line_});
    } else {
      return Err("unknown section [" + in + "] (sections: [program NAME], [peer \"SUBJECT\"])");
    }
    section_ = in;
    return Status::Ok();
  }

  Status TopKey(const std::string& key, const std::string& v) {
    if (key == "listen") {
      have_listen_ = true;
      return ParseListen(v, &c_);
    }
    if (key == "spool" || key == "workdir" || key == "output") {
      if (v[0] != '/') return InvalidArgument(key + " must be an absolute path, not '" + v + "'");
      (key == "spool" ? c_.spool : key == "workdir" ? c_.workdir : c_.output) = v;
      return Status::Ok();
    }
    if (key == "cert" || key == "key" || key == "ca") {
      (key == "cert" ? c_.tls.cert : key == "key" ? c_.tls.key : c_.tls.ca) = v;
      return Status::Ok();
    }
    if (key == "insecure_no_tls" || key == "keep") {
      ASSIGN_OR_RETURN(bool b, ParseBool(v));
      (key == "keep" ? c_.keep : c_.insecure_no_tls) = b;
      return Status::Ok();
    }
    if (key == "commit_timeout") {
      char* end = nullptr;
      long t = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || t < 1 || t > 86400)
        return InvalidArgument("commit_timeout wants seconds (1-86400)");
      c_.commit_timeout_s = static_cast<int>(t);
      return Status::Ok();
    }
    return InvalidArgument("unknown key '" + key +
                           "' (known: listen, spool, cert, key, ca, insecure_no_tls, workdir, output, keep, "
                           "commit_timeout)");
  }

  Status ProgramKey(const std::string& key, const std::string& v) {
    if (key != "command")
      return InvalidArgument("unknown key '" + key + "' in [program " + program_ + "] (known: command)");
    ASSIGN_OR_RETURN(auto words, SplitWords(v));
    if (words.empty()) return InvalidArgument("empty command for program " + program_);
    c_.programs[program_] = words;
    return Status::Ok();
  }

  Status PeerKey(const std::string& key, const std::string& v) {
    if (key != "allow")
      return InvalidArgument("unknown key '" + key + "' in [" + section_ + "] (known: allow)");
    return ParseAllow(v, &c_.peers.back());
  }

  Config c_;
  int line_ = 0;
  std::string section_, program_;
  std::set<std::string> seen_;
  std::map<std::string, int> program_lines_;
  bool have_listen_ = false;
};

// An executable file: a path, or a name found on PATH.
bool Runnable(const std::string& cmd) {
  auto is_file = [](const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
  };
  if (cmd.find('/') != std::string::npos) return is_file(cmd);
  std::string all = platform::Env::Default()->GetEnv("PATH");
  for (std::size_t b = 0; b <= all.size();) {
    std::size_t e = all.find(':', b);
    if (e == std::string::npos) e = all.size();
    std::string dir = all.substr(b, e - b);
    if (!dir.empty() && is_file(fs::path(dir) / cmd)) return true;
    b = e + 1;
  }
  return false;
}

}  // namespace

Result<std::vector<std::string>> SplitWords(const std::string& s) {
  std::vector<std::string> words;
  std::string w;
  bool in_word = false, quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    if (quoted) {
      if (ch == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) {
        w += s[++i];
      } else if (ch == '"') {
        quoted = false;
      } else {
        w += ch;
      }
    } else if (ch == '"') {
      quoted = in_word = true;
    } else if (ch == ' ' || ch == '\t') {
      if (in_word) words.push_back(w);
      w.clear();
      in_word = false;
    } else {
      w += ch;
      in_word = true;
    }
  }
  if (quoted) return InvalidArgument("unclosed \" in '" + s + "'");
  if (in_word) words.push_back(w);
  return words;
}

Result<Config> ParseConfig(const std::string& text, const std::string& path) {
  Parser p(path);
  int line = 0;
  for (std::size_t b = 0; b < text.size();) {
    std::size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    RETURN_IF_ERROR(p.Line(text.substr(b, e - b), ++line));
    b = e + 1;
  }
  return p.Finish();
}

Result<Config> LoadConfig(const std::string& path) {
  platform::Env* env = platform::Env::Default();
  auto text = platform::ReadFileToString(env, path);
  if (!text.ok()) return text.status().WithContext("reading the configuration");
  ASSIGN_OR_RETURN(Config c, ParseConfig(*text, path));
  if (!c.insecure_no_tls) {
    for (auto [what, file] : {std::pair{"cert", &c.tls.cert}, {"key", &c.tls.key}, {"ca", &c.tls.ca}}) {
      auto r = platform::ReadFileToString(env, *file);
      if (!r.ok()) return InvalidArgument(path + ": " + what + " = " + *file + ": " + r.status().message());
    }
  }
  for (const auto& [name, words] : c.programs) {
    if (!Runnable(words[0]))
      return InvalidArgument(path + ": [program " + name + "]: " + words[0] +
                             " is not an executable file here");
  }
  for (auto [what, dir] : {std::pair{"workdir", &c.workdir}, {"output", &c.output}}) {
    std::error_code ec;
    if (!dir->empty() && !fs::is_directory(*dir, ec))
      return InvalidArgument(path + ": " + what + " = " + *dir + " is not a directory");
  }
  return c;
}

const Peer* FindPeer(const Config& c, const std::string& subject, const std::string& cn, bool tls) {
  const Peer* any = nullptr;
  for (const auto& p : c.peers) {
    if (p.subject == "*") {
      any = &p;
      continue;
    }
    if (!tls) continue;
    std::string want = NormalSubject(p.subject);
    if (want == NormalSubject(subject) || (!cn.empty() && want == "CN=" + cn)) return &p;
  }
  return any;
}

}  // namespace ckpt::ckptd
