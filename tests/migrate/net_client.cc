// A small ckpt:// client for the ckptd tests (tests/migrate/test_ckptd.py),
// built from src/net alone:
//   net_client URL [--cert F --key F --ca F] [--insecure-no-tls] hello KIND NAME
//       sends a HELLO and prints the daemon's ACCEPT (exit 0) or error (exit 1)
//   net_client URL ... migrate IMAGE NAME CWD
//       a whole program migration: HELLO, the image, END, READY, COMMIT, DONE
// Output: "OK <json>" or "ERROR <message>".
#include <cstdio>
#include <cstring>
#include <string>

#include "net/handoff.h"
#include "net/tls.h"
#include "platform/env.h"

using namespace ckpt;

namespace {

int Fail(const Status& st) {
  std::printf("ERROR %s\n", st.message().c_str());
  return 1;
}

nlohmann::json BaseHello(const std::string& kind, const std::string& name) {
  return {{"kind", kind}, {"name", name}, {"id", platform::RandomHex16()}};
}

int Migrate(net::Stream* s, const std::string& image, const std::string& name, const std::string& cwd) {
  net::SourceHandoff h(s);
  auto src = platform::Env::Default()->NewRandomAccessFile(image);
  if (!src.ok()) return Fail(src.status());
  nlohmann::json hello = BaseHello("program", name);
  hello["image_bytes"] = (*src)->Size();
  hello["image_name"] = name + ".ckpt";
  hello["cwd"] = cwd;
  hello["ckpt_dir"] = cwd;
  auto a = h.Hello(hello);
  if (!a.ok()) return Fail(a.status());
  Status st = h.SendFile(image, nullptr);
  if (st.ok()) st = h.EndImage();
  if (!st.ok()) return Fail(st);
  auto r = h.AwaitReady(120 * 1000);
  if (!r.ok()) return Fail(r.status());
  auto d = h.Commit(60 * 1000);
  if (!d.ok()) return Fail(d.status());
  std::printf("OK %s\n", d->dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: net_client URL [--cert F --key F --ca F] [--insecure-no-tls] hello|migrate ...\n");
    return 2;
  }
  std::string url = argv[1];
  net::TlsFiles f;
  bool insecure = false;
  int i = 2;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    std::string o = argv[i];
    if (o == "--insecure-no-tls") {
      insecure = true;
    } else if (i + 1 < argc && (o == "--cert" || o == "--key" || o == "--ca")) {
      (o == "--cert" ? f.cert : o == "--key" ? f.key : f.ca) = argv[++i];
    } else {
      std::fprintf(stderr, "net_client: unknown option %s\n", o.c_str());
      return 2;
    }
  }
  if (i >= argc) return 2;
  std::string verb = argv[i++];
  auto s = net::ConnectDaemon(url, f, insecure);
  if (!s.ok()) return Fail(s.status());
  if (verb == "hello" && i + 2 == argc) {
    net::SourceHandoff h(s->get());
    auto a = h.Hello(BaseHello(argv[i], argv[i + 1]));
    if (!a.ok()) return Fail(a.status());
    std::printf("OK %s\n", a->dump().c_str());
    h.Abort("net_client: only a hello");
    return 0;
  }
  if (verb == "migrate" && i + 3 == argc) return Migrate(s->get(), argv[i], argv[i + 1], argv[i + 2]);
  std::fprintf(stderr, "net_client: bad arguments for %s\n", verb.c_str());
  return 2;
}
