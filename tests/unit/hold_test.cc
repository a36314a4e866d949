// The streamed checkpoint-and-hold's pieces (lib/hold.h): the ticket a
// migration leaves beside a program's registration, the program taking it,
// and the image's way through the loopback connection, byte for byte.
#include "lib/hold.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "platform/env.h"
#include "platform/socket.h"
#include "temp_dir_test.h"

namespace ckpt {
namespace {

lib::StreamTicket Ticket(int port, std::int64_t requester) {
  lib::StreamTicket t;
  t.port = port;
  t.token = platform::RandomHex16() + platform::RandomHex16();
  t.requester = requester;
  return t;
}

TEST(StreamTicketTest, RoundTrips) {
  lib::StreamTicket t = Ticket(4242, 1234);
  auto back = lib::ParseStreamTicket(lib::EncodeStreamTicket(t));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->port, 4242);
  EXPECT_EQ(back->token, t.token);
  EXPECT_EQ(back->requester, 1234);
}

TEST(StreamTicketTest, RefusesMalformedTickets) {
  const std::string tok(32, 'a');
  for (const std::string& bad :
       {std::string(""), "CKPTSTREAM 2 80 " + tok + " 5\n", "CKPTSTREAM 1 0 " + tok + " 5\n",
        "CKPTSTREAM 1 70000 " + tok + " 5\n", "CKPTSTREAM 1 80 " + tok.substr(1) + " 5\n",
        "CKPTSTREAM 1 80 " + std::string(32, 'g') + " 5\n", "CKPTSTREAM 1 80 " + tok + " 0\n",
        "CKPTSTREAM 1 80 " + tok + " 5 extra\n"}) {
    auto t = lib::ParseStreamTicket(bad);
    EXPECT_FALSE(t.ok()) << "accepted: " << bad;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), Code::kCorruption);
    }
  }
}

class StreamHoldTest : public TempDirTest {
 protected:
  std::string RegPath() const { return (dir_ / "reg.json").string(); }
  void WriteTicket(const lib::StreamTicket& t) {
    ASSERT_TRUE(
        platform::WriteFileAtomic(env_, lib::StreamTicketPath(RegPath()), lib::EncodeStreamTicket(t), false)
            .ok());
  }
  platform::Env* env_ = platform::Env::Default();
};

TEST_F(StreamHoldTest, NoTicketMeansAFile) {
  auto s = lib::TakeStreamTicket(env_, RegPath(), 77);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->get(), nullptr);
}

TEST_F(StreamHoldTest, AMalformedTicketFailsTheCheckpointAndIsRemoved) {
  ASSERT_TRUE(
      platform::WriteFileAtomic(env_, lib::StreamTicketPath(RegPath()), "CKPTSTREAM junk", false).ok());
  auto s = lib::TakeStreamTicket(env_, RegPath(), 77);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(env_->FileExists(lib::StreamTicketPath(RegPath())));
}

TEST_F(StreamHoldTest, TheImageArrivesWholeAndInOrder) {
  auto l = platform::Listener::Loopback();
  ASSERT_TRUE(l.ok());
  lib::StreamTicket t = Ticket((*l)->port(), 1);
  WriteTicket(t);
  // Odd sizes around the sink's 1 MiB buffer.
  std::string want;
  for (std::size_t i = 0; want.size() < (5u << 20) + 333; ++i)
    want.push_back(static_cast<char>(i * 131 + (i >> 9)));
  std::string got;
  Status reader_status = Status::Ok();
  std::thread reader([&] {
    auto a = (*l)->Accept(10000);
    if (!a.ok()) {
      reader_status = a.status();
      return;
    }
    auto pid = lib::ReadReportLine(a->get(), "CKPTSTREAM", t.token, 10000);
    if (!pid.ok() || *pid != 77) {
      reader_status = pid.ok() ? Internal("pid " + std::to_string(*pid)) : pid.status();
      return;
    }
    char buf[70000];
    for (;;) {
      auto n = (*a)->RecvSome(buf, sizeof buf, 10000);
      if (!n.ok()) {
        reader_status = n.status();
        return;
      }
      if (*n == 0) return;
      got.append(buf, *n);
    }
  });
  auto s = lib::TakeStreamTicket(env_, RegPath(), 77);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_NE(s->get(), nullptr);
  EXPECT_FALSE(env_->FileExists(lib::StreamTicketPath(RegPath()))) << "the ticket is taken once";
  for (std::size_t off = 0, step = 1; off < want.size(); off += step, step = step * 3 % 1500007 + 1) {
    ASSERT_TRUE((*s)->Append(want.data() + off, std::min(step, want.size() - off)).ok());
  }
  EXPECT_EQ((*s)->Position(), want.size());
  ASSERT_TRUE((*s)->Finish().ok());
  reader.join();
  ASSERT_TRUE(reader_status.ok()) << reader_status.ToString();
  EXPECT_TRUE(got == want) << "got " << got.size() << " bytes of " << want.size();
}

TEST_F(StreamHoldTest, AReaderThatGoesAwayFailsTheWriterWithoutASignal) {
  auto l = platform::Listener::Loopback();
  ASSERT_TRUE(l.ok());
  WriteTicket(Ticket((*l)->port(), 1));
  auto s = lib::TakeStreamTicket(env_, RegPath(), 77);
  ASSERT_TRUE(s.ok() && s->get() != nullptr);
  {
    auto a = (*l)->Accept(10000);
    ASSERT_TRUE(a.ok());
  }  // closed unread
  std::string chunk(1 << 20, 'x');
  Status st = Status::Ok();
  for (int i = 0; i < 64 && st.ok(); ++i) st = (*s)->Append(chunk.data(), chunk.size());
  if (st.ok()) st = (*s)->Finish();
  EXPECT_FALSE(st.ok()) << "64 MiB written into a closed connection without an error";
}

TEST_F(StreamHoldTest, NobodyListeningIsAnErrorNamingThePort) {
  int port = 0;
  {
    auto l = platform::Listener::Loopback();
    ASSERT_TRUE(l.ok());
    port = (*l)->port();
  }
  WriteTicket(Ticket(port, 1));
  auto s = lib::TakeStreamTicket(env_, RegPath(), 77);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(std::to_string(port)), std::string::npos) << s.status().ToString();
}

}  // namespace
}  // namespace ckpt
