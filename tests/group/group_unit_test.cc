// Unit tests of the group building blocks: encodings of the group image
// sections, spec files, the semaphore/barrier algorithms (including withdrawn
// waits), and fixed-base segments.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "group/control.h"
#include "group/group_image.h"
#include "group/protocol.h"
#include "group/spec.h"
#include "group/sync.h"
#include "platform/env.h"
#include "platform/secure.h"
#include "platform/shm.h"
#include "platform/socket.h"

namespace ckpt::group {
namespace {

TEST(GroupImage, ObjectsRoundTrip) {
  std::vector<ObjectRecord> in(4);
  in[0].kind = ObjKind::kSegment, in[0].name = "ring", in[0].size = 256, in[0].count = 32,
  in[0].base = 1ULL << 33, in[0].desc = "u64";
  in[1].kind = ObjKind::kSemaphore, in[1].name = "full", in[1].value = 7, in[1].creator = 1;
  in[2].kind = ObjKind::kBarrier, in[2].name = "sweep", in[2].parties = 3, in[2].arrived = 2,
  in[2].generation = 9;
  in[3].kind = ObjKind::kMutex, in[3].name = "m", in[3].value = 0, in[3].holder = 2;
  std::vector<ObjectRecord> out;
  ASSERT_TRUE(DecodeObjects(EncodeObjects(in), &out).ok());
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].base, 1ULL << 33);
  EXPECT_EQ(out[0].desc, "u64");
  EXPECT_EQ(out[1].value, 7u);
  EXPECT_EQ(out[2].arrived, 2u);
  EXPECT_EQ(out[2].generation, 9u);
  EXPECT_EQ(out[3].holder, 2u);
  std::string bad = EncodeObjects(in);
  bad[1] = 9;  // unknown kind
  EXPECT_EQ(DecodeObjects(bad, &out).code(), Code::kCorruption);
  EXPECT_EQ(DecodeObjects(EncodeObjects(in) + "x", &out).code(), Code::kCorruption);
}

TEST(GroupImage, GroupRoundTripAndRankOrder) {
  GroupRecord g;
  g.name = "ring";
  g.seq = 4;
  for (std::uint32_t r = 0; r < 2; ++r) {
    MemberRecord m;
    m.rank = r;
    m.platform = "linux-x86_64";
    m.program = "p" + std::to_string(r);
    m.args = {"10", "a b"};
    m.launch = {"wine", "p.exe"};
    m.pending_wait = r ? "semaphore full" : "";
    g.members.push_back(m);
  }
  GroupRecord out;
  ASSERT_TRUE(DecodeGroup(EncodeGroup(g), &out).ok());
  EXPECT_EQ(out.members[1].pending_wait, "semaphore full");
  EXPECT_EQ(out.members[0].args[1], "a b");
  g.members[1].rank = 0;
  EXPECT_EQ(DecodeGroup(EncodeGroup(g), &out).code(), Code::kCorruption);
}

TEST(Spec, LinesQuotesRepeats) {
  auto s = ParseSpec("# comment\n./prod 10\n\n2x ./cons \"a b\" # tail\n");
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ((*s)[0], (std::vector<std::string>{"./prod", "10"}));
  EXPECT_EQ((*s)[2], (std::vector<std::string>{"./cons", "a b"}));
  EXPECT_FALSE(ParseSpec("# nothing\n").ok());
  EXPECT_FALSE(ParseSpec("./x \"open\n").ok());
}

class FakeContext : public WaitContext {
 public:
  bool Interrupted() override { return interrupted.load(); }
  void SetBlocked(Slot*, platform::WaitQueue*) override {}
  std::atomic<bool> interrupted{false};
};

TEST(Sync, WithdrawnWaitTakesNothing) {
  Slot s{};
  auto q = platform::WaitQueue::Open("ckpt.unit.q0", &s.seq);
  ASSERT_TRUE(q.ok());
  FakeContext ctx;
  s.value.store(1);
  EXPECT_EQ(SemWait(&s, q->get(), &ctx), WaitResult::kDone);
  EXPECT_EQ(s.value.load(), 0u);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ctx.interrupted = true;
    WakeAll(&s, q->get());
  });
  EXPECT_EQ(SemWait(&s, q->get(), &ctx), WaitResult::kInterrupted);
  t.join();
  EXPECT_EQ(s.value.load(), 0u);
  EXPECT_EQ(s.waiters.load(), 0u);
  ctx.interrupted = false;
  SemPost(&s, q->get(), 2);
  EXPECT_TRUE(SemTryTake(&s));
  EXPECT_TRUE(SemTryTake(&s));
  EXPECT_FALSE(SemTryTake(&s));
}

TEST(Sync, BarrierArrivalWithdrawn) {
  Slot s{};
  s.parties = 2;
  auto q = platform::WaitQueue::Open("ckpt.unit.q1", &s.seq);
  ASSERT_TRUE(q.ok());
  FakeContext ctx;
  std::uint32_t gen = 0;
  EXPECT_FALSE(BarrierArrive(&s, q->get(), &gen));
  EXPECT_EQ(static_cast<std::uint32_t>(s.barrier.load()), 1u);
  ctx.interrupted = true;
  EXPECT_EQ(BarrierAwait(&s, q->get(), &ctx, gen), WaitResult::kInterrupted);
  EXPECT_EQ(static_cast<std::uint32_t>(s.barrier.load()), 0u);  // the arrival is undone
  // Completed meanwhile: not withdrawn, passed.
  EXPECT_FALSE(BarrierArrive(&s, q->get(), &gen));
  std::uint32_t g2 = 0;
  EXPECT_TRUE(BarrierArrive(&s, q->get(), &g2));
  EXPECT_EQ(BarrierAwait(&s, q->get(), &ctx, gen), WaitResult::kDone);
}

TEST(Segment, FixedBaseTakenIsAClearError) {
  std::string name = "ckpt.unit" + std::to_string(platform::Env::Default()->ProcessId());
  const std::uintptr_t base = std::uintptr_t{0x3f0000000000};  // outside ASan's shadow
  auto a = platform::SharedSegment::Create(name + ".a", 65536, base);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>((*a)->data()), base);
  auto b = platform::SharedSegment::Create(name + ".b", 65536, base);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("already in use"), std::string::npos) << b.status().message();
  EXPECT_TRUE(platform::SharedSegment::Unlink(name + ".a").ok());
  EXPECT_TRUE(platform::SharedSegment::Unlink(name + ".b").ok());
}

TEST(SoloGroup, ObjectsWorkWithoutCoordinator) {
  Options o;
  o.listen = false;
  o.quiet = true;
  Session s(o);
  Group& g = s.group();
  EXPECT_FALSE(g.coordinated());
  EXPECT_EQ(g.size(), 1);
  Semaphore& sem = g.semaphore("s", 2);
  sem.wait();
  sem.wait();
  EXPECT_FALSE(sem.try_wait());
  sem.post();
  EXPECT_EQ(sem.value(), 1u);
  double* d = g.array<double>("d", 4);
  d[3] = 1.5;
  Mutex& m = g.mutex("m");
  m.lock();
  EXPECT_FALSE(m.try_lock());
  m.unlock();
  g.barrier("b").wait();  // one party: passes
}

TEST(Secure, HexAndConstantTimeCompare) {
  std::string raw("\x00\x7f\xff\x10", 4), back;
  EXPECT_EQ(platform::HexEncode(raw), "007fff10");
  ASSERT_TRUE(platform::HexDecode("007FfF10", &back));
  EXPECT_EQ(back, raw);
  EXPECT_FALSE(platform::HexDecode("abc", &back));
  EXPECT_FALSE(platform::HexDecode("zz", &back));
  EXPECT_TRUE(platform::ConstantTimeEqual("secret", "secret"));
  EXPECT_FALSE(platform::ConstantTimeEqual("secret", "secreT"));
  EXPECT_FALSE(platform::ConstantTimeEqual("secret", "secret2"));
  unsigned char a[32] = {}, b[32] = {};
  ASSERT_TRUE(platform::RandomBytes(a, sizeof a).ok());
  ASSERT_TRUE(platform::RandomBytes(b, sizeof b).ok());
  EXPECT_NE(std::string(reinterpret_cast<char*>(a), 32), std::string(reinterpret_cast<char*>(b), 32));
}

// A peer that starts a message and stops: the read gives up (Timeout), it does not hang.
TEST(Channel, IncompleteMessageTimesOut) {
  auto listener = platform::Listener::Loopback();
  ASSERT_TRUE(listener.ok());
  auto client = platform::ConnectLoopback((*listener)->port());
  ASSERT_TRUE(client.ok());
  auto server = (*listener)->Accept(5000);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*client)->SendAll("\x02\x00", 2).ok());
  Channel ch(std::move(server).value());
  auto m = ch.Recv(5000, kMaxPayload, 200);
  EXPECT_EQ(m.status().code(), Code::kTimeout) << m.status().message();
  Channel quiet(std::move(client).value());
  EXPECT_EQ(quiet.Recv(100).status().code(), Code::kTimeout);  // nothing at all within 100 ms
}

TEST(Channel, AuthRoundTrip) {
  Auth a;
  a.secret = std::string(kSecretBytes, '\x5a');
  Auth b;
  ASSERT_TRUE(DecodeAuth(EncodeAuth(a), &b).ok());
  EXPECT_EQ(b.version, kProtocolVersion);
  EXPECT_EQ(b.secret, a.secret);
  EXPECT_EQ(DecodeAuth(EncodeAuth(a) + "x", &b).code(), Code::kCorruption);
}

}  // namespace
}  // namespace ckpt::group
