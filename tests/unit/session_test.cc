// Session: checkpoint and resume in one process, type mismatches, stages,
// pruning, option parsing, and failures that must leave the previous image.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "fault_env.h"
#include "image/reader.h"
#include "lib/registration.h"
#include "lib/testing.h"
#include "platform/env.h"
#include "temp_dir_test.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

class SessionTest : public TempDirTest {
 protected:
  void TearDown() override {
    lib::SetEnvForTesting(nullptr);
    TempDirTest::TearDown();
  }
  std::vector<std::string> Images() {
    std::vector<std::string> v;
    for (auto& e : fs::directory_iterator(dir_)) {
      if (e.path().extension() == ".ckpt" || e.path().extension() == ".tmp") v.push_back(e.path().filename());
    }
    std::sort(v.begin(), v.end());
    return v;
  }
};

TEST_F(SessionTest, CheckpointThenResumeRestoresEveryVariable) {
  std::string image;
  {
    Session s(Opts());
    auto& n = s.var("n", std::uint64_t{0});
    auto& grid = s.var("grid", std::vector<double>(1000, 0.0));
    auto& names = s.var("names", std::map<std::string, int>());
    int owned = 5;
    s.bind("owned", owned);
    n = 41;
    grid[999] = 3.25;
    names["a"] = 1;
    owned = 6;
    EXPECT_FALSE(s.resumed());
    EXPECT_EQ(s.checkpoint(), Event::kCheckpointed);
    image = s.last_image();
    n = 1000;  // after the checkpoint: must not be seen by the resume
  }
  ASSERT_TRUE(fs::exists(image));
  Session s(Opts(image));
  EXPECT_TRUE(s.resumed());
  auto& n = s.var("n", std::uint64_t{0});
  auto& grid = s.var("grid", std::vector<double>());
  auto& names = s.var("names", std::map<std::string, int>());
  int owned = 0;
  s.bind("owned", owned);
  EXPECT_EQ(n, 41u);
  ASSERT_EQ(grid.size(), 1000u);
  EXPECT_EQ(grid[999], 3.25);
  EXPECT_EQ(names.at("a"), 1);
  EXPECT_EQ(owned, 6);
  EXPECT_EQ(s.safepoint(), Event::kResumed);
  EXPECT_EQ(s.safepoint(), Event::kNone);
}

TEST_F(SessionTest, TypeMismatchNamesVariableAndBothTypes) {
  std::string image;
  {
    Session s(Opts());
    s.var("grid", std::vector<double>{1.0});
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    image = s.last_image();
  }
  Session s(Opts(image));
  try {
    s.var("grid", std::vector<float>());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("'grid' is vector<f64> in the image, the program declares vector<f32>"),
        std::string::npos)
        << e.what();
  }
}

// Damage that leaves the value's own bytes intact (the section's end marker)
// still makes the resume refuse the image, as `ckpt verify` does.
TEST_F(SessionTest, DamagedSectionEndMarkerIsRefused) {
  std::string image;
  {
    Session s(Opts());
    s.var("grid", std::vector<double>{1.0, 2.0});
    s.var("step", std::uint64_t{7});
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    image = s.last_image();
  }
  std::uint64_t last = 0;  // the last byte of the 'grid' section: its end marker's
  {
    auto src = platform::Env::Default()->NewRandomAccessFile(image);
    ASSERT_TRUE(src.ok());
    auto r = image::ImageReader::Open(std::move(*src));
    ASSERT_TRUE(r.ok()) << r.status().message();
    for (const auto& sec : (*r)->sections())
      if (sec.name == "grid") last = sec.offset + sec.stored_size - 1;
  }
  ASSERT_NE(last, 0u);
  {
    std::fstream f(image, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(last));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(static_cast<std::streamoff>(last));
    f.write(&c, 1);
  }
  Session s(Opts(image));
  try {
    s.var("grid", std::vector<double>());
    s.var("step", std::uint64_t{0});
    FAIL() << "a damaged image was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("section 'grid': section end marker is damaged"), std::string::npos)
        << e.what();
  }
}

TEST_F(SessionTest, ValueThatDoesNotFitIsAnErrorNamingTheVariable) {
  std::string image;
  {
    Session s(Opts());
    s.var("counter", std::int64_t{5000000000LL});
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    image = s.last_image();
  }
  Session s(Opts(image));
  try {
    s.var("counter", std::int32_t{0});
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("'counter'"), std::string::npos) << m;
    EXPECT_NE(m.find("5000000000"), std::string::npos) << m;
  }
}

TEST_F(SessionTest, MissingAndUnclaimedVariablesAreErrors) {
  std::string image;
  {
    Session s(Opts());
    s.var("a", 1);
    s.var("b", 2);
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    image = s.last_image();
  }
  {
    Session s(Opts(image));
    EXPECT_THROW(s.var("zzz", 1), Error);
  }
  {
    Session s(Opts(image));
    s.var("a", 0);
    try {
      s.safepoint();
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos) << e.what();
    }
  }
}

TEST_F(SessionTest, StagesRunOnceAcrossResumesAndNest) {
  std::string image;
  int outer_runs = 0, inner_a = 0, inner_b = 0;
  {
    Session s(Opts());
    s.stage("outer", [&] {
      ++outer_runs;
      s.stage("a", [&] { ++inner_a; });
      s.stage("b", [&] {
        ++inner_b;
        ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);  // inside b: b not complete
        image = s.last_image();
      });
    });
  }
  Session s(Opts(image));
  s.stage("outer", [&] {
    ++outer_runs;
    s.stage("a", [&] { ++inner_a; });
    s.stage("b", [&] { ++inner_b; });
  });
  EXPECT_EQ(outer_runs, 2);  // re-entered: it had not completed
  EXPECT_EQ(inner_a, 1);     // completed before the checkpoint: skipped
  EXPECT_EQ(inner_b, 2);
}

TEST_F(SessionTest, KeepsNewestKImages) {
  Options o = Opts();
  o.keep = 2;
  Session s(o);
  s.var("x", 0);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
  EXPECT_EQ(Images(), (std::vector<std::string>{"t.000004.ckpt", "t.000005.ckpt"}));
}

TEST_F(SessionTest, FullDiskLeavesPreviousImageIntact) {
  testing::FaultEnv env;
  lib::SetEnvForTesting(&env);
  Session s(Opts());
  auto& v = s.var("v", std::vector<double>(100000, 1.0));
  ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
  std::string first = s.last_image();
  auto size = fs::file_size(first);
  v.assign(100000, 2.0);
  env.write_budget = 50000;
  EXPECT_EQ(s.checkpoint(), Event::kFailed);
  EXPECT_NE(s.last_error().find("No space left"), std::string::npos) << s.last_error();
  EXPECT_EQ(Images(), std::vector<std::string>{"t.000001.ckpt"});  // no .tmp left behind
  EXPECT_EQ(fs::file_size(first), size);
  env.write_budget = -1;
  env.fail_rename = true;
  EXPECT_EQ(s.checkpoint(), Event::kFailed);
  EXPECT_EQ(Images(), std::vector<std::string>{"t.000001.ckpt"});
  env.fail_rename = false;
  lib::SetEnvForTesting(nullptr);
  // The surviving image still resumes with the old values.
  Session r(Opts(first));
  auto& back = r.var("v", std::vector<double>());
  EXPECT_EQ(back[0], 1.0);
}

TEST_F(SessionTest, ResumeFromDirectorySkipsCorruptNewest) {
  {
    Session s(Opts());
    auto& x = s.var("x", 0);
    x = 1;
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    x = 2;
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    // Cut the newest image short.
    fs::resize_file(s.last_image(), fs::file_size(s.last_image()) / 2);
  }
  Session s(Opts(dir_.string()));
  EXPECT_EQ(s.var("x", 0), 1);
}

// --ckpt-resume auto / DIR / FILE take only this program's images: "t" never
// resumes from "t2" or "t.v2" (same variables, so it would run on silently
// with another program's state).
TEST_F(SessionTest, ResumeTakesOnlyThisProgramsImages) {
  auto write = [&](const std::string& name, int value) {
    Options o = Opts();
    o.name = name;
    Session s(o);
    s.var("x", value);
    EXPECT_EQ(s.checkpoint(), Event::kCheckpointed);
    return s.last_image();
  };
  std::string t2 = write("t2", 2);
  write("t.v2", 3);
  write("t.v2", 4);
  {
    Session s(Opts("auto"));  // only other programs' images: a fresh start
    EXPECT_FALSE(s.resumed());
    EXPECT_EQ(s.var("x", 0), 0);
  }
  try {
    Session s(Opts(dir_.string()));
    FAIL() << "resumed from another program's image";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("no checkpoint images of program 't'"), std::string::npos) << m;
    EXPECT_NE(m.find("'t.v2', 't2'"), std::string::npos) << m;
  }
  try {
    Session s(Opts(t2));
    FAIL() << "resumed from another program's image file";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("image of program 't2', not of this program 't'"), std::string::npos) << m;
  }
  {
    Options o = Opts("auto");
    o.name = "t.v2";  // a name with a dot finds its own images, the newest first
    Session s(o);
    EXPECT_TRUE(s.resumed());
    EXPECT_EQ(s.var("x", 0), 4);
  }
  {
    Options o = Opts(t2);
    o.name = "t2";  // --ckpt-name makes another program's image acceptable
    Session s(o);
    EXPECT_EQ(s.var("x", 0), 2);
  }
  write("t", 1);
  Session s(Opts("auto"));
  EXPECT_EQ(s.var("x", 0), 1);
}

// A mismatch over a million variables is one short line, not megabytes.
TEST_F(SessionTest, LongListsInErrorsAreCapped) {
  std::string image;
  {
    Session s(Opts());
    for (int i = 0; i < 5000; ++i) s.var("v" + std::to_string(i), i);
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    image = s.last_image();
  }
  Session s(Opts(image));
  try {
    s.safepoint();
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_LT(m.size(), 500u) << m;
    EXPECT_NE(m.find("and 4990 more"), std::string::npos) << m;
  }
}

TEST_F(SessionTest, ArgvOptionsAreRemoved) {
  std::string d = "--ckpt-dir=" + dir_.string();
  std::vector<std::string> args = {"prog",  "keep1",        d,     "--ckpt-quiet", "--ckpt-keep", "3",
                                   "keep2", "--ckpt-codec", "none"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int argc = static_cast<int>(args.size());
  Session s(argc, argv.data());
  ASSERT_EQ(argc, 3);
  EXPECT_STREQ(argv[0], "prog");
  EXPECT_STREQ(argv[1], "keep1");
  EXPECT_STREQ(argv[2], "keep2");
  EXPECT_EQ(argv[3], nullptr);
  EXPECT_EQ(s.options().keep, 3);
  EXPECT_EQ(s.options().dir, dir_.string());
  EXPECT_EQ(s.options().name, "prog");
}

TEST_F(SessionTest, NoOptionsMeansNoCheckpoints) {
  std::vector<std::string> args = {"prog", "a"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int argc = 2;
  fs::current_path(dir_);
  {
    Session s(argc, argv.data());
    auto& i = s.var("i", 0);
    for (; i < 100000; ++i) EXPECT_EQ(s.safepoint(), Event::kNone);
  }
  EXPECT_TRUE(Images().empty());
}

TEST_F(SessionTest, StopAtCountsSafepointsAndExits) {
  EXPECT_EXIT(
      {
        Options o = Opts();
        o.stop_at = 10;
        Session s(o);
        auto& i = s.var("i", 0);
        for (; i < 100; ++i) s.safepoint();
        std::exit(0);
      },
      ::testing::ExitedWithCode(kExitCheckpointed), "");
  ASSERT_EQ(Images(), std::vector<std::string>{"t.000001.ckpt"});
  Session s(Opts(dir_.string()));
  EXPECT_EQ(s.var("i", 0), 9);  // the 10th safepoint runs with i == 9
}

// Many floating-point values live in registers across safepoints that each
// write a checkpoint (hashing, memcpy, I/O: code that uses the vector
// registers). The results must equal the same loop without checkpoints.
// (No function calls in the loop but the safepoint: a call would make the
// compiler spill the values itself and the test would prove nothing.)
template <bool kCheckpoint>
[[gnu::noinline]] double RegisterHeavyLoop(Session* s, int n, int* checkpoints) {
  volatile double seed = 1.0;
  double a = seed * 0.5, b = seed * 0.25, c = seed * 0.125, d = seed * 0.0625;
  double e = seed * 1.5, f = seed * 2.5, g = seed * 3.5, h = seed * 4.5;
  for (int i = 0; i < n; ++i) {
    a = a * 0.999 + b;
    b = b * 0.998 + c;
    c = c * 0.997 + d;
    d = d * 0.996 + e;
    e = e * 0.995 + f * 1e-3;
    f = f * 0.994 + g * 1e-3;
    g = g * 0.993 + h * 1e-3;
    h = h * 0.992 + a * 1e-3;
    if constexpr (kCheckpoint) {
      s->request_checkpoint();
      *checkpoints += s->safepoint() == Event::kCheckpointed;
    }
  }
  return a + b + c + d + e + f + g + h;
}

TEST_F(SessionTest, SafepointPreservesRegistersAcrossCheckpoints) {
  Session s(Opts());
  s.var("v", std::vector<double>(100000, 3.0));
  int with = 0, without = 0;
  EXPECT_EQ(RegisterHeavyLoop<true>(&s, 20, &with), RegisterHeavyLoop<false>(&s, 20, &without));
  EXPECT_EQ(with, 20);
  EXPECT_EQ(s.checkpoints_written(), 20u);
}

TEST_F(SessionTest, ExceptionFromASafepointReachesTheCaller) {
  std::string image;
  {
    Session s(Opts());
    s.var("a", 1);
    s.var("b", 2);
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    image = s.last_image();
  }
  Session s(Opts(image));
  s.var("a", 0);
  EXPECT_THROW(s.safepoint(), Error);  // 'b' was never declared
}

// A variable registered after the first safepoint (or checkpoint) could never
// be restored from the images that follow: refused at the call, by name.
TEST_F(SessionTest, LateRegistrationIsRefusedNamingTheVariable) {
  {
    Session s(Opts());
    s.var("early", 1);
    EXPECT_EQ(s.safepoint(), Event::kNone);
    try {
      s.var("late", 2);
      FAIL() << "late registration accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("variable 'late' is registered after the first safepoint"),
                std::string::npos)
          << e.what();
    }
    int owned = 0;
    EXPECT_THROW(s.bind("late_bound", owned), Error);
    EXPECT_EQ(s.checkpoint(), Event::kCheckpointed);
  }
  {
    Session s(Opts());
    s.var("early", 1);
    ASSERT_EQ(s.checkpoint(), Event::kCheckpointed);
    try {
      s.var("late", 2);
      FAIL() << "registration after a checkpoint accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'late' is registered after the first checkpoint"),
                std::string::npos)
          << e.what();
    }
  }
  // Without throw_on_error: the documented error exit, with the name.
  EXPECT_EXIT(
      {
        Options o = Opts();
        o.throw_on_error = false;
        Session s(o);
        s.safepoint();
        s.var("late", 2);
        std::exit(0);
      },
      ::testing::ExitedWithCode(kExitResumeFailed),
      "variable 'late' is registered after the first safepoint");
}

// Only the thread that created the session may take checkpoints: another
// thread's safepoint() / checkpoint() is refused with a reason, writes
// nothing, and leaves the request for the owner's next safepoint.
TEST_F(SessionTest, CheckpointFromAnotherThreadIsRefused) {
  Session s(Opts());
  s.var("i", 0);
  EXPECT_EQ(s.safepoint(), Event::kNone);
  s.request_checkpoint();
  Event from_safepoint = Event::kNone, from_checkpoint = Event::kNone;
  std::string why;
  std::thread t([&] {
    from_safepoint = s.safepoint();
    why = s.last_error();
    from_checkpoint = s.checkpoint();
  });
  t.join();
  EXPECT_EQ(from_safepoint, Event::kFailed);
  EXPECT_EQ(from_checkpoint, Event::kFailed);
  EXPECT_NE(why.find("safepoint() called from a thread that does not own the session"), std::string::npos)
      << why;
  EXPECT_EQ(s.checkpoints_written(), 0u);
  EXPECT_TRUE(Images().empty());
  EXPECT_EQ(s.last_error(), "");  // the owner's view is its own
  EXPECT_EQ(s.safepoint(), Event::kCheckpointed);
  EXPECT_EQ(s.checkpoints_written(), 1u);
}

TEST_F(SessionTest, RequestFromAnotherThreadIsTakenAtNextSafepoint) {
  Session s(Opts());
  s.var("i", 0);
  std::thread t([&] { s.request_checkpoint(); });
  t.join();
  EXPECT_EQ(s.safepoint(), Event::kCheckpointed);
  EXPECT_EQ(s.checkpoints_written(), 1u);
}

// A registration written under qemu-user records qemu's own start time, a
// few ticks after the kernel's; a process that reused the PID started after
// the registration was written and is never taken for its writer.
TEST(RegistrationTest, StartTimeOfAnEmulatedWriterMatches) {
  EXPECT_TRUE(lib::SameStartTime(2350895, 2350895));
  EXPECT_TRUE(lib::SameStartTime(2350896, 2350895));   // qemu-s390x 7.2, measured
  EXPECT_FALSE(lib::SameStartTime(2350895, 2350896));  // a later process with the PID
  EXPECT_FALSE(lib::SameStartTime(2350895 + 100000, 2350895));
  EXPECT_FALSE(lib::SameStartTime(5, 0));  // unreadable
}

// Options given beside argv are defaults the arguments override; with
// throw_on_error a bad option is an exception, not an exit.
TEST(SessionArgs, DefaultsBesideArgvAndErrorsAsExceptions) {
  char prog[] = "prog", bad[] = "--ckpt-codec=nope", keep[] = "--ckpt-keep=5";
  char* argv[3] = {prog, bad, nullptr};
  int argc = 2;
  Options throwing;
  throwing.throw_on_error = true;
  try {
    Session s(argc, argv, throwing);
    ADD_FAILURE() << "a bad option was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos) << e.what();
  }
  argv[1] = keep;
  argc = 2;
  Options d;
  d.listen = false;
  d.quiet = true;
  d.name = "defaults";
  Session s(argc, argv, d);
  EXPECT_EQ(argc, 1);  // the option was taken out of argv
  EXPECT_EQ(s.safepoint(), Event::kNone);
}

}  // namespace
}  // namespace ckpt
