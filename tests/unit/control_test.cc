// The control plane: the registration schema (lib/registration.h) that
// sessions and group coordinators write and every requester reads, and the
// public ckpt/control.hpp asking a real running program (a forked child
// with a session) for checkpoints.
#include "ckpt/control.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "lib/registration.h"
#include "temp_dir_test.h"

namespace ckpt {
namespace {

TEST(RegistrationSchema, ProgramRoundTripsWithBytesThatAreNotUtf8) {
  lib::RegistrationRecord r;
  r.pid = 4242;
  r.program = "heat";
  r.exe = "/opt/bin/heat";
  r.platform = "linux-x86_64";
  r.start_time = 123456789;
  r.dir = std::string("/data/\xff\xfe", 8);
  r.cwd = "/srv/job";
  r.generation = 7;
  r.failures = 2;
  r.last_image = "/data/heat-7.ckpt";
  r.last_error = "disk \"full\"";
  r.held = true;
  auto back = lib::DecodeRegistration("reg", lib::EncodeRegistration(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_FALSE(back->is_group());
  EXPECT_EQ(back->pid, 4242);
  EXPECT_EQ(back->program, "heat");
  EXPECT_EQ(back->exe, r.exe);
  EXPECT_EQ(back->platform, r.platform);
  EXPECT_EQ(back->start_time, r.start_time);
  EXPECT_EQ(back->dir, r.dir);
  EXPECT_EQ(back->cwd, r.cwd);
  EXPECT_EQ(back->generation, 7u);
  EXPECT_EQ(back->failures, 2u);
  EXPECT_TRUE(back->has_failures);
  EXPECT_EQ(back->last_image, r.last_image);
  EXPECT_EQ(back->last_error, r.last_error);
  EXPECT_TRUE(back->held);
  EXPECT_FALSE(back->exited);
}

TEST(RegistrationSchema, GroupRoundTripsWithItsMembersCommands) {
  lib::RegistrationRecord r;
  r.pid = 99;
  r.kind = "group";
  r.group = "solver";
  r.id = "g-1f2e";
  r.port = 40123;
  r.secret_hex = std::string(64, 'a');
  r.members = 2;
  r.commands = {{"/bin/a", {}, {"a", "--n", "3"}}, {"", {"wine"}, {}}};
  r.every = 2.5;
  r.timeout = 10;
  r.keep = 3;
  r.codec = "zstd";
  auto back = lib::DecodeRegistration("reg", lib::EncodeRegistration(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->is_group());
  EXPECT_EQ(back->name(), "solver");
  EXPECT_EQ(back->id, r.id);
  EXPECT_EQ(back->port, r.port);
  EXPECT_EQ(back->secret_hex, r.secret_hex);
  ASSERT_EQ(back->commands.size(), 2u);
  EXPECT_EQ(back->commands[0].program, "/bin/a");
  EXPECT_EQ(back->commands[0].args, (std::vector<std::string>{"a", "--n", "3"}));
  EXPECT_EQ(back->commands[1].launch, std::vector<std::string>{"wine"});
  EXPECT_EQ(back->every, 2.5);
  EXPECT_EQ(back->keep, 3);
  EXPECT_EQ(back->codec, "zstd");
}

TEST(RegistrationSchema, ReadsOlderFilesAndIgnoresUnknownKeys) {
  // As ckpt 0.1 wrote it: no "kind", no "failures"; and a key from the future.
  auto r = lib::DecodeRegistration(
      "old",
      R"({"pid": 12, "program": "p", "dir": [47, 255], "generation": 3, "last_error": "x", "later": {}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->is_group());
  EXPECT_EQ(r->dir, "/\xff");
  EXPECT_EQ(r->generation, 3u);
  EXPECT_FALSE(r->has_failures);
  EXPECT_EQ(r->timeout, 30);  // a default
}

TEST(RegistrationSchema, RefusesMalformedFilesNamingTheKey) {
  for (const char* bad : {"", "[]", "{\"pid\": ", "{\"generation\": -1}", "{\"held\": 1}", "{\"dir\": [300]}",
                          "{\"kind\": \"daemon\"}", "{\"commands\": [1]}"}) {
    auto r = lib::DecodeRegistration("/run/x.json", bad);
    ASSERT_FALSE(r.ok()) << "accepted: " << bad;
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find("/run/x.json"), std::string::npos) << r.status().message();
  }
  auto r = lib::DecodeRegistration("f", "{\"held\": \"yes\"}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"held\""), std::string::npos) << r.status().message();
}

class ControlTest : public TempDirTest {
 protected:
  // A child that counts, telling `report` each value before its safepoint.
  pid_t StartCounter(int report) {
    pid_t pid = ::fork();
    if (pid != 0) return pid;
    Session s(Opts());
    auto& n = s.var("n", std::uint64_t{0});
    for (;;) {
      n = n + 1;
      std::uint64_t v = n;
      if (::write(report, &v, sizeof v) != sizeof v) ::_exit(2);
      s.safepoint();
      ::usleep(2000);
    }
  }
  // The newest value `report` holds.
  static std::uint64_t Last(int report) {
    std::uint64_t v = 0, last = 0;
    while (::read(report, &v, sizeof v) == sizeof v) last = v;
    return last;
  }
  static std::vector<control::Running> WaitListed(pid_t pid) {
    for (int i = 0; i < 500; ++i) {
      auto l = control::List();
      for (const auto& e : l)
        if (e.pid == pid) return l;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {};
  }
};

TEST_F(ControlTest, ListsAndCheckpointsARunningProgramWhoseImageResumes) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = StartCounter(fds[1]);
  ::close(fds[1]);
  struct Reap {  // never leaves the child running when an assertion fails
    pid_t pid;
    ~Reap() {
      if (::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    }
  } reap{child};
  auto running = WaitListed(child);
  ASSERT_EQ(running.size(), 1u) << "the child never registered";
  EXPECT_EQ(running[0].name, "t");
  EXPECT_FALSE(running[0].group);
  EXPECT_EQ(running[0].image_dir, dir_.string());
  EXPECT_EQ(running[0].checkpoints, 0u);

  control::Checkpointed first = control::Checkpoint(child);
  EXPECT_EQ(first.generation, 1u);
  EXPECT_FALSE(first.exited);
  EXPECT_TRUE(std::filesystem::exists(first.image)) << first.image;
  EXPECT_EQ(control::List().at(0).checkpoints, 1u);

  control::Checkpointed last = control::Checkpoint(child, {/*exit=*/true, /*timeout_seconds=*/30});
  EXPECT_EQ(last.generation, 2u);
  EXPECT_TRUE(last.exited);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitCheckpointed);
  const std::uint64_t reached = Last(fds[0]);
  ::close(fds[0]);
  ASSERT_GT(reached, 0u);
  EXPECT_TRUE(control::List().empty());

  // The image holds the value the program had at the safepoint where it stopped.
  Session s(Opts(last.image));
  auto& n = s.var("n", std::uint64_t{0});
  EXPECT_EQ(static_cast<std::uint64_t>(n), reached);
}

TEST_F(ControlTest, RefusesWhatIsNotARunningProgramByName) {
  try {
    control::Checkpoint(::getpid());  // this test is not a ckpt program
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a ckpt program"), std::string::npos) << e.what();
  }
  try {
    control::CheckpointGroup("no-such-group");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no running group named 'no-such-group'"), std::string::npos)
        << e.what();
  }
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);
  EXPECT_THROW(control::Checkpoint(gone), Error);
}

}  // namespace
}  // namespace ckpt
