// Unit tests of the ckpt:// pieces: URL parsing, the client's refusals, the
// daemon's configuration parser and peer matching, and TLS streams over
// loopback (read timeouts, a read and a write at once, half-close, large
// transfers intact). Certificates come from the openssl CLI at test time.
#include "net/tls.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "config.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

TEST(DaemonUrl, Parses) {
  auto u = net::ParseDaemonUrl("ckpt://node2:7171");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->host, "node2");
  EXPECT_EQ(u->port, 7171);
  u = net::ParseDaemonUrl("ckpt://10.0.0.2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, net::kDefaultDaemonPort);
  u = net::ParseDaemonUrl("ckpt://[fe80::1]:99/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "fe80::1");
  EXPECT_EQ(u->port, 99);
  for (const char* bad : {"ssh://x", "ckpt://", "ckpt://h:", "ckpt://h:0", "ckpt://h:70000", "ckpt://h:7x",
                          "ckpt://u@h:1", "ckpt://fe80::1:7070", "ckpt://[::1", "ckpt://-oProxy:1"}) {
    EXPECT_FALSE(net::ParseDaemonUrl(bad).ok()) << bad;
  }
}

TEST(DaemonUrl, ClientNeedsAllThreeFiles) {
  auto s = net::ConnectDaemon("ckpt://127.0.0.1:1", net::TlsFiles{"c.pem", "", ""}, false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "ckpt://host:port needs --cert, --key and --ca (or --insecure-no-tls); missing --key, --ca");
}

const char* kConfig = R"(# test
listen = 127.0.0.1:7070
spool = /var/spool/ckpt
cert = /c.pem
key = /k.pem
ca = /ca.pem
[program heat]
command = wine "/opt/my dir/heat.exe" --flag
[peer "CN=alice, O=lab"]
allow = program, process
[peer CN=bob]
allow = program
)";

TEST(DaemonConfig, ParsesAndMatchesPeers) {
  auto c = ckptd::ParseConfig(kConfig, "t.conf");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->listen_addr, "127.0.0.1");
  EXPECT_EQ(c->listen_port, 7070);
  ASSERT_EQ(c->programs.count("heat"), 1u);
  EXPECT_EQ(c->programs["heat"], (std::vector<std::string>{"wine", "/opt/my dir/heat.exe", "--flag"}));
  const ckptd::Peer* p = ckptd::FindPeer(*c, "CN=alice,O=lab", "alice", true);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->allow, (std::vector<std::string>{"program", "process"}));
  // CN=alice alone is not the subject "CN=alice, O=lab"; bob matches by CN.
  EXPECT_EQ(ckptd::FindPeer(*c, "CN=alice", "alice", true), nullptr);
  EXPECT_EQ(ckptd::FindPeer(*c, "CN=alice,O=other", "alice", true), nullptr);
  ASSERT_NE(ckptd::FindPeer(*c, "CN=bob,O=anything", "bob", true), nullptr);
  EXPECT_EQ(ckptd::FindPeer(*c, "", "", false), nullptr);  // plain TCP matches only "*"
}

TEST(DaemonConfig, ErrorsNameTheLine) {
  std::string base = kConfig;
  struct Case {
    std::string text, want;
  } cases[] = {
      {base + "bogus = 1\n", "t.conf:13: unknown key 'bogus' in [peer CN=bob]"},
      {base + "[peer CN=bob]\n", "t.conf:13: [peer \"CN=bob\"] given twice"},
      {base + "[program heat]\n", "t.conf:13: [program heat] given twice"},
      {base + "[program ../x]\n", "t.conf:13: [program NAME]: '../x' is not a program name"},
      {base + "[program x]\n", "t.conf:13: [program x] has no 'command ='"},
      {base + "[program y]\ncommand = \"unclosed\n", "t.conf:14: unclosed \""},
      {"listen = *:1\n" + base, "t.conf:3: 'listen' given twice"},
      {"spool = relative\n" + base, "t.conf:1: spool must be an absolute path"},
      {"commit_timeout = 0\n" + base, "t.conf:1: commit_timeout wants seconds"},
      {"just words\n", "t.conf:1: expected 'key = value'"},
      {"[peer]\n", "t.conf:1: [peer \"SUBJECT\"] needs a certificate subject"},
      {"insecure_no_tls = true\n" + base, "only a [peer \"*\"] section can let them in"},
  };
  for (const auto& c : cases) {
    auto r = ckptd::ParseConfig(c.text, "t.conf");
    ASSERT_FALSE(r.ok()) << c.want;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << r.status().message() << "\nwant: " << c.want;
  }
}

// A CA, a server certificate for 127.0.0.1 and a client certificate, made once.
class TlsLoopback : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ckpt-tls-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::string d = dir_.string();
    std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
    std::string script =
        "cd " + d + " && exec >log 2>&1 && openssl req -x509" + ec +
        "-keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca"
        " && printf 'subjectAltName=IP:127.0.0.1\\n' > s.ext"
        " && openssl req -new" +
        ec +
        "-keyout s.key -out s.csr -subj /CN=server"
        " && openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 1"
        " -out s.pem -extfile s.ext"
        " && openssl req -new" +
        ec +
        "-keyout c.key -out c.csr -subj /O=lab/CN=client"
        " && openssl x509 -req -in c.csr -CA ca.pem -CAkey ca.key -set_serial 3 -days 1 -out c.pem";
    ok_ = std::system(script.c_str()) == 0;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static net::TlsFiles Files(const std::string& who) {
    return {(dir_ / (who + ".pem")).string(), (dir_ / (who + ".key")).string(), (dir_ / "ca.pem").string()};
  }

  // A connected pair: `client` and `server`.
  void Connect() {
    ASSERT_TRUE(ok_) << "openssl failed; see " << (dir_ / "log").string();
    auto l = net::TlsListener::Listen("127.0.0.1", 0, Files("s"));
    ASSERT_TRUE(l.ok()) << l.status().message();
    listener_ = std::move(*l);
    std::thread t([&] {
      auto p = listener_->Accept(10000);
      ASSERT_TRUE(p.ok()) << p.status().message();
      server_ = std::move(*p);
    });
    auto c = net::ConnectTls("127.0.0.1", listener_->port(), Files("c"));
    t.join();
    ASSERT_TRUE(c.ok()) << c.status().message();
    client_ = std::move(*c);
  }

  static inline fs::path dir_;
  static inline bool ok_ = false;
  std::unique_ptr<net::TlsListener> listener_;
  std::unique_ptr<net::TlsPeer> server_;
  std::unique_ptr<net::Stream> client_;
};

TEST_F(TlsLoopback, SubjectAndReadTimeout) {
  Connect();
  ASSERT_TRUE(server_);
  EXPECT_EQ(server_->subject(), "CN=client,O=lab");
  EXPECT_EQ(server_->common_name(), "client");
  char buf[4];
  Status st = client_->Read(buf, sizeof buf, 300);
  EXPECT_EQ(st.code(), Code::kTimeout) << st.message();
  // Part of what was asked for, then nothing: still a timeout, not a hang.
  ASSERT_TRUE(server_->Write("ab", 2).ok());
  st = client_->Read(buf, sizeof buf, 300);
  EXPECT_EQ(st.code(), Code::kTimeout) << st.message();
}

TEST_F(TlsLoopback, ReadWhileWritingAndHalfClose) {
  Connect();
  ASSERT_TRUE(server_);
  // 8 MiB each way at once: the client writes while another thread reads.
  const std::size_t n = 8u << 20;
  std::string up(n, '\0'), down(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    up[i] = static_cast<char>(i * 7 + 1);
    down[i] = static_cast<char>(i * 13 + 5);
  }
  std::string got_up(n, '\0'), got_down(n, '\0');
  Status s_read, s_write, c_read, c_write;
  std::thread server_reader([&] { s_read = server_->Read(got_up.data(), n, 20000); });
  std::thread server_writer([&] { s_write = server_->Write(down.data(), n); });
  std::thread client_reader([&] { c_read = client_->Read(got_down.data(), n, 20000); });
  c_write = client_->Write(up.data(), n);
  server_reader.join();
  server_writer.join();
  client_reader.join();
  ASSERT_TRUE(s_read.ok() && s_write.ok() && c_read.ok() && c_write.ok())
      << s_read.message() << s_write.message() << c_read.message() << c_write.message();
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);
  // Half-close: the server reads the end, and can still answer.
  client_->CloseWrite();
  char c;
  Status st = server_->Read(&c, 1, 5000);
  EXPECT_EQ(st.code(), Code::kNotFound) << st.message();
  ASSERT_TRUE(server_->Write("z", 1).ok());
  ASSERT_TRUE(client_->Read(&c, 1, 5000).ok());
  EXPECT_EQ(c, 'z');
}

TEST_F(TlsLoopback, ServerNameIsChecked) {
  ASSERT_TRUE(ok_);
  auto l = net::TlsListener::Listen("127.0.0.1", 0, Files("s"));
  ASSERT_TRUE(l.ok()) << l.status().message();
  std::thread t([&] { (void)(*l)->Accept(10000); });
  // "localhost" is 127.0.0.1, but the certificate names only the address.
  auto c = net::ConnectTls("localhost", (*l)->port(), Files("c"));
  t.join();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("hostname mismatch"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace ckpt
