#include "group/coordinator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <list>
#include <map>
#include <set>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "group/coordinator_internal.h"
#include "group/event_queue.h"
#include "group/group_image.h"
#include "group/protocol.h"
#include "image/codec.h"
#include "image/reader.h"
#include "image/writer.h"
#include "lib/hold.h"
#include "lib/program_image.h"
#include "lib/registration.h"
#include "platform/process.h"
#include "platform/secure.h"
#include "platform/shm.h"
#include "platform/socket.h"
#include "util/utf8.h"

namespace ckpt::group::internal {

std::string Coordinator::Who(int rank) const {
  const MemberState& m = members_[static_cast<std::size_t>(rank)];
  std::string prog = "?";
  for (const auto& a : m.launch) {
    std::string b = platform::BaseName(a);
    if (b != "wine" && b != "wine64") {
      prog = b;
      break;
    }
  }
  std::string pid = m.child ? std::to_string(m.child->pid()) : "?";
  return "member " + std::to_string(rank) + " (" + prog + ", pid " + pid + ")";
}

Status Coordinator::LoadResumeImage() {
  ASSIGN_OR_RETURN(auto src, env_->NewRandomAccessFile(opt_.resume));
  // Read here and closed: nothing keeps the image open while the group runs (a
  // migration's spool entry on Windows cannot go while a file in it is open).
  ASSIGN_OR_RETURN(auto reader, image::ImageReader::Open(std::move(src)));
  if (reader->header().kind != image::ImageKind::kGroup)
    return InvalidArgument(opt_.resume + " is a " + image::ImageKindName(reader->header().kind) +
                           " image, not a group image");
  RETURN_IF_ERROR(reader->VerifyAll());
  const image::SectionInfo* gs = reader->Find(kSectionGroup);
  const image::SectionInfo* os = reader->Find(kSectionObjects);
  if (gs == nullptr || os == nullptr) return Corruption(opt_.resume + ": GROUP or OBJECTS section missing");
  ASSIGN_OR_RETURN(std::string gdata, reader->ReadSection(*gs));
  GroupRecord g;
  RETURN_IF_ERROR(DecodeGroup(gdata, &g).WithContext(opt_.resume));
  ASSIGN_OR_RETURN(std::string odata, reader->ReadSection(*os));
  RETURN_IF_ERROR(DecodeObjects(odata, &resume_objects_).WithContext(opt_.resume));
  if (g.members.size() != members_.size())
    return InvalidArgument(opt_.resume + " holds " + std::to_string(g.members.size()) + " members, but " +
                           std::to_string(members_.size()) + " commands were given");
  for (std::uint32_t r = 0; r < g.members.size(); ++r) {
    if (reader->Find(kSectionMember, MemberSectionName(r)) == nullptr)
      return Corruption(opt_.resume + ": no state for member " + std::to_string(r));
  }
  seq_ = g.seq;
  resumes_ = g.resumes + 1;
  return Status::Ok();
}

Status Coordinator::PublishRegistration() {
  RETURN_IF_ERROR(env_->SecureRuntimeDir(env_->RuntimeDir(), /*create=*/true));
  registration_path_ = lib::Registration::PathFor(env_, env_->ProcessId());
  // The secret makes this file the key to the group: owner-only (WriteFileAtomic makes it 0600,
  // exclusively, under a random name, never through a link).
  lib::RegistrationRecord r;
  r.pid = env_->ProcessId();
  r.kind = "group";
  r.group = opt_.name;
  r.id = gid_;
  r.port = listener_->port();
  r.secret_hex = platform::HexEncode(secret_);
  r.platform = lib::PlatformTag();
  r.start_time = env_->ProcessStartTime(r.pid);
  r.dir = opt_.dir;
  r.cwd = env_->AbsolutePath(".");
  r.members = static_cast<int>(members_.size());
  for (const MemberState& m : members_)
    r.commands.push_back({m.connected ? m.hello.program : "", m.launch,
                          m.connected ? m.hello.args : std::vector<std::string>{}});
  r.every = opt_.every_seconds;
  r.timeout = opt_.timeout_seconds;
  r.keep = static_cast<int>(opt_.keep);
  r.codec = opt_.codec;
  r.generation = written_;
  r.last_image = last_image_;
  return platform::WriteFileAtomic(env_, registration_path_, lib::EncodeRegistration(r));
}

void Coordinator::AcceptLoop() {
  while (!stop_) {
    ReapHandshakes(false);
    auto s = listener_->Accept(100);
    if (!s.ok()) {
      if (s.status().code() != Code::kTimeout) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    auto ch = std::make_shared<Channel>(std::move(s).value());
    if (handshakes_.size() >= kMaxHandshakes) {
      Refuse(ch, std::to_string(kMaxHandshakes) + " connections are already being checked");
      continue;
    }
    PendingConnection& pc = handshakes_.emplace_back();
    pc.channel = ch;
    pc.thread = std::thread([this, ch, &pc] {
      Handshake(ch);
      pc.done = true;
    });
  }
}

void Coordinator::ReapHandshakes(bool all) {
  for (auto it = handshakes_.begin(); it != handshakes_.end();) {
    if (all && !it->done) it->channel->Shutdown();  // wakes its read where the OS can
    if (all || it->done) {
      it->thread.join();
      it = handshakes_.erase(it);
    } else {
      ++it;
    }
  }
}

void Coordinator::Refuse(const std::shared_ptr<Channel>& ch, const std::string& why) {
  int n = ++refusals_;
  if (n <= kRefusalsShown)
    Say("refused a connection: " + why + (n == kRefusalsShown ? " (further refusals are not shown)" : ""));
  ch->Send(Msg::kRefused, EncodeNote({0, 0, "refused by group " + opt_.name + ": " + why})).IgnoreError();
  ch->Shutdown();
}

void Coordinator::Handshake(const std::shared_ptr<Channel>& ch) {
  auto deadline = Clock::now() + std::chrono::milliseconds(kHandshakeMs);
  // The next message, within the deadline; polled in slices to notice the end of the group.
  auto next = [&]() -> Result<Message> {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (stop_) return FailedPrecondition("the group is ending");
      if (left <= 0)
        return Timeout("no complete greeting within " + std::to_string(kHandshakeMs / 1000) + " s");
      Status st = ch->WaitReadable(static_cast<int>(std::min<long long>(left, 100)));
      if (st.code() == Code::kTimeout) continue;
      if (!st.ok()) return st;
      auto m = ch->Recv(0, kMaxGreeting, static_cast<int>(left));
      if (!m.ok() && m.status().code() == Code::kTimeout)
        return Timeout("no complete greeting within " + std::to_string(kHandshakeMs / 1000) + " s");
      return m;
    }
  };
  auto first = next();
  if (stop_) return;
  if (!first.ok()) return Refuse(ch, first.status().message());
  Auth a;
  if (first->type != Msg::kAuth || !DecodeAuth(first->payload, &a).ok())
    return Refuse(ch, "it did not start by proving it belongs to the group (no group secret)");
  if (a.version != kProtocolVersion)
    return Refuse(ch, "it speaks group protocol " + std::to_string(a.version) + ", this ckpt speaks " +
                          std::to_string(kProtocolVersion) +
                          " (members, clients and coordinator must be the "
                          "same ckpt version)");
  if (!platform::ConstantTimeEqual(a.secret, secret_)) return Refuse(ch, "wrong group secret");
  auto second = next();
  if (!second.ok()) return Refuse(ch, second.status().message());
  Event e;
  e.channel = ch;
  e.msg = std::move(second).value();
  if (e.msg.type == Msg::kHello) {
    e.kind = Event::kHello;
  } else if (e.msg.type == Msg::kClientCheckpoint || e.msg.type == Msg::kClientHold) {
    e.kind = Event::kClient;
  } else {
    return Refuse(ch, "unexpected message " + std::to_string(static_cast<std::uint32_t>(e.msg.type)));
  }
  events_.Push(std::move(e));
}

void Coordinator::ReadLoop(int rank, const std::shared_ptr<Channel>& ch,
                           const std::shared_ptr<std::atomic<bool>>& said_bye) {
  for (;;) {
    auto m = ch->Recv();
    Event e;
    e.rank = rank;
    if (!m.ok()) {
      // Closed, or a message that stopped half-way (60 s): this member's
      // channel is over; closing our end tells it so (it then ends).
      ch->Shutdown();
      e.kind = Event::kLost;
      events_.Push(std::move(e));
      return;
    }
    e.msg = std::move(m).value();
    if (e.msg.type == Msg::kBye) {
      said_bye->store(true);
      ch->Shutdown();
      continue;  // the recv now fails and reports the connection lost
    }
    events_.Push(std::move(e));
  }
}

bool Coordinator::OnHello(Event& e) {
  Hello h;
  if (!DecodeHello(e.msg.payload, &h).ok() || h.group_id != gid_ || h.rank >= members_.size() ||
      members_[h.rank].connected) {
    Refuse(e.channel, "not one of this group's members, or its rank has joined already");
    return false;
  }
  MemberState& m = members_[h.rank];
  m.hello = h;
  m.channel = e.channel;
  m.connected = true;
  int rank = static_cast<int>(h.rank);
  readers_.emplace_back([this, rank, ch = e.channel, bye = m.said_bye] { ReadLoop(rank, ch, bye); });
  if (std::all_of(members_.begin(), members_.end(), [](const MemberState& x) { return x.connected; }))
    PublishRegistration().IgnoreError();  // with every member's program, for `ckpt migrate GROUP`
  return true;
}

void Coordinator::Handle(Event& e) {
  switch (e.kind) {
    case Event::kHello:
      OnHello(e);
      break;
    case Event::kClient: {
      Note n;
      Client c;
      c.channel = e.channel;
      c.hold = e.msg.type == Msg::kClientHold;
      bool flag = DecodeNote(e.msg.payload, &n).ok() && n.flag != 0;
      c.exit = !c.hold && flag;
      c.stream = c.hold && flag;
      deferred_clients_.push_back(std::move(c));
      break;
    }
    case Event::kLost:
      break;  // the child's exit status tells the story
    case Event::kMessage:
      if (e.msg.type == Msg::kAskCheckpoint) {
        Note n;
        ask_pending_ = true;
        ask_exit_ = ask_exit_ || (DecodeNote(e.msg.payload, &n).ok() && n.flag != 0);
      }
      break;  // late kReady / kEnd of an abandoned checkpoint
  }
}

std::string Coordinator::ReapChildren() {
  for (auto& m : members_) {
    if (!m.exit_status && m.child) m.exit_status = m.child->Poll();
  }
  for (std::size_t r = 0; r < members_.size(); ++r) {
    const auto& st = members_[r].exit_status;
    if (st && *st != 0 && *st != kExitCheckpointed)
      return Who(static_cast<int>(r)) + " ended with " + platform::ChildProcess::Describe(*st);
  }
  return "";
}

int Coordinator::AwaitTerminationRequest(std::chrono::milliseconds min_wait) const {
  auto interrupted = [this] {
    return std::any_of(members_.begin(), members_.end(), [](const MemberState& m) {
      return m.exit_status && (platform::ChildProcess::EndedByInterrupt(*m.exit_status) ||
                               (*m.exit_status == 0 && m.connected && !m.said_bye->load()));
    });
  };
  auto start = Clock::now();
  for (;;) {
    if (int sig = platform::TerminationRequest(); sig != 0) return sig;
    // A kBye still in flight arrives within the first wait; a member that
    // Ctrl-C ended never sends one.
    auto waited = Clock::now() - start;
    if (waited >= std::chrono::milliseconds(3000) || (waited >= min_wait && !interrupted())) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool Coordinator::AllExited() const {
  for (const auto& m : members_) {
    if (!m.exit_status) return false;
  }
  return true;
}

void Coordinator::Broadcast(Msg type, const Note& n) {
  std::string p = EncodeNote(n);
  for (auto& m : members_) {
    if (m.connected && !m.exit_status) m.channel->Send(type, p).IgnoreError();
  }
}

void Coordinator::Shutdown() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  ReapHandshakes(true);
  for (auto& m : members_) {
    if (m.child && !m.exit_status) m.child->Kill();
    if (m.channel) m.channel->Shutdown();
  }
  for (auto& t : readers_) t.join();
  for (auto& c : deferred_clients_) {
    c.channel->Send(Msg::kClientReply, EncodeNote({0, 0, "the group has ended"})).IgnoreError();
  }
  if (!registration_path_.empty()) env_->RemoveFile(registration_path_).IgnoreError();
  platform::SharedSegment::UnlinkAll("ckpt." + gid_ + ".");
}

int Coordinator::Run(const std::vector<std::vector<std::string>>& launches) {
  if (launches.empty()) {
    Error("no members to run");
    return 2;
  }
  if (!image::ParseCodec(opt_.codec) || !image::CodecAvailable(*image::ParseCodec(opt_.codec))) {
    Error("codec '" + opt_.codec + "' is not available (this build has " + image::AvailableCodecs() + ")");
    return 2;
  }
  members_.resize(launches.size());
  for (std::size_t r = 0; r < launches.size(); ++r) members_[r].launch = launches[r];
  // Taken (and removed from the environment) before any member starts: the
  // members must not report to the migration themselves.
  handoff_ = lib::TakeHandoff(env_);
  if (handoff_.requested) {
    auto ht = lib::HoldTimeoutFromEnvironment(env_);
    if (!ht.ok()) {
      Error(ht.status().message());
      return 2;
    }
    hold_timeout_ = *ht;
  }
  // The id names the group's shared objects: unpredictable, so that nobody
  // can create them first. The secret admits members and clients.
  unsigned char rnd[8 + kSecretBytes];
  if (Status st = platform::RandomBytes(rnd, sizeof rnd); !st.ok()) {
    Error(st.message());
    return 1;
  }
  std::uint64_t nonce = 0;
  for (int i = 0; i < 8; ++i) nonce = nonce << 8 | rnd[i];
  gid_ = "g" + std::to_string(env_->ProcessId()) + "x" + std::to_string(nonce);
  secret_.assign(reinterpret_cast<const char*>(rnd + 8), kSecretBytes);
  if (!opt_.resume.empty()) {
    if (Status st = LoadResumeImage(); !st.ok()) {
      Error("cannot resume from " + opt_.resume + ": " + st.message());
      return st.code() == Code::kCorruption || st.code() == Code::kNotSupported ? 3 : 1;
    }
  }
  auto l = platform::Listener::Loopback();
  if (!l.ok()) {
    Error(l.status().message());
    return 1;
  }
  listener_ = std::move(l).value();
  if (Status st = PublishRegistration(); !st.ok())
    Say("warning: `ckpt checkpoint` will not find the group: " + st.message());
  platform::CatchTerminationRequests();  // Ctrl-C and kill end the group in order
  acceptor_ = std::thread([this] { AcceptLoop(); });
  if (!StartMembers()) {
    Shutdown();
    return 1;
  }
  if (handoff_.requested) {
    if (Status st = HoldAfterStart(); !st.ok()) {
      Error("migration handoff aborted: " + st.message() +
            "; the group stops without running on (exit status " + std::to_string(kExitHandoffAborted) + ")");
      Shutdown();  // kills the parked members, removes the group's objects and registration
      return kExitHandoffAborted;
    }
  }
  std::string failure;
  if (int sig = Loop(&failure); sig != 0) return StopOnRequest(sig);
  int status = 0;
  if (!failure.empty()) {
    Error(failure + (last_image_.empty() ? "" : " (last group image: " + last_image_ + ")"));
    status = 1;
  } else {
    bool all75 = true, all0 = true;
    for (const auto& m : members_) {
      all75 = all75 && m.exit_status == kExitCheckpointed;
      all0 = all0 && m.exit_status == 0;
    }
    status = all0 ? 0 : (all75 ? kExitCheckpointed : 1);
    if (status == 1) Error("members ended with mixed statuses");
  }
  Shutdown();
  return status;
}

bool Coordinator::StartMembers() {
  for (std::size_t r = 0; r < members_.size(); ++r) {
    std::vector<std::string> env = {"CKPT_GROUP_PORT=" + std::to_string(listener_->port()),
                                    "CKPT_GROUP_ID=" + gid_, "CKPT_GROUP_RANK=" + std::to_string(r),
                                    "CKPT_GROUP_SIZE=" + std::to_string(members_.size()),
                                    "CKPT_GROUP_SECRET=" + platform::HexEncode(secret_)};
    if (!opt_.resume.empty()) env.push_back("CKPT_GROUP_RESUME=" + opt_.resume);
    if (handoff_.requested) env.push_back("CKPT_GROUP_HOLD=" + std::to_string(kHoldEpoch));
    auto c = platform::ChildProcess::Start(members_[r].launch, env);
    if (!c.ok()) {
      Error("cannot start member " + std::to_string(r) + ": " + c.status().message());
      return false;
    }
    members_[r].child = std::move(c).value();
  }
  Say("started " + std::to_string(members_.size()) + " members" +
      (opt_.resume.empty() ? "" : " resuming from " + opt_.resume) + " (group id " + gid_ + ")");
  return true;
}

int Coordinator::Loop(std::string* failure) {
  auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.every_seconds));
  auto next_periodic = Clock::now() + period;
  while (!AllExited()) {
    if (int sig = platform::TerminationRequest(); sig != 0) return sig;
    if (std::string bad = ReapChildren(); !bad.empty()) {
      // Ctrl-C reaches the members too: a member ended by it is the request, not a failure.
      // Wine hands the coordinator its console event from a new thread, which under load
      // comes well after the members' exits: a member that Ctrl-C ended waits longer for it.
      if (int sig = AwaitTerminationRequest(std::chrono::milliseconds(50)); sig != 0) return sig;
      *failure = bad + "; stopping the group";
      return 0;
    }
    auto e = events_.Pop(std::chrono::milliseconds(20));
    if (e) Handle(*e);
    bool want = false, want_exit = false;
    std::vector<std::shared_ptr<Channel>> clients;
    std::shared_ptr<Channel> holder;  // one hold per checkpoint; an exit request goes first
    bool stream = false;              // the holder wants the image, and nobody else needs a file
    if (!deferred_clients_.empty() && !exit_requested_) {
      bool any_exit = std::any_of(deferred_clients_.begin(), deferred_clients_.end(),
                                  [](const Client& c) { return c.exit; });
      std::vector<Client> later;
      for (auto& c : deferred_clients_) {
        if (c.hold && (any_exit || holder)) {
          later.push_back(std::move(c));
          continue;
        }
        if (c.hold) {
          holder = c.channel;
          stream = c.stream;
        } else {
          clients.push_back(c.channel);
          want_exit = want_exit || c.exit;
        }
      }
      deferred_clients_ = std::move(later);
      want = true;
    }
    if (ask_pending_ && !exit_requested_) {
      want = true;
      stream = false;
      want_exit = want_exit || ask_exit_;
      ask_pending_ = ask_exit_ = false;
    }
    bool all_running = std::none_of(members_.begin(), members_.end(),
                                    [](const MemberState& m) { return m.exit_status.has_value(); });
    if (opt_.every_seconds > 0 && Clock::now() >= next_periodic && !exit_requested_ && all_running) {
      want = true;
      stream = false;
      next_periodic = Clock::now() + period;
    }
    if (!want) continue;
    std::string path;
    Status st = Checkpoint(want_exit, &path, holder.get(), stream && clients.empty());
    if (!st.ok()) Error(st.message());
    if (holder && !st.ok()) holder->Send(Msg::kClientReply, EncodeNote({0, 0, st.message()})).IgnoreError();
    for (auto& ch : clients) {
      ch->Send(Msg::kClientReply,
               EncodeNote({0, static_cast<std::uint8_t>(st.ok() ? 1 : 0), st.ok() ? path : st.message()}))
          .IgnoreError();
    }
    if (!st.ok() && st.code() == Code::kIoError) {
      if (std::string bad = ReapChildren(); !bad.empty()) {
        *failure = bad + "; stopping the group";
        return 0;
      }
    }
  }
  // Every member has ended; one that Ctrl-C ended under Wine looks like a
  // success (status 0) but never said goodbye: the request may still come.
  return AwaitTerminationRequest(std::chrono::milliseconds(0));
}

int Coordinator::StopOnRequest(int sig) {
  Error("interrupted by " + platform::SignalName(sig) + "; stopping the members" +
        (last_image_.empty() ? "" : " (last group image: " + last_image_ + ")"));
  for (auto& m : members_) {
    if (m.child && !m.exit_status) m.child->Terminate();
  }
  auto deadline = Clock::now() + std::chrono::seconds(5);  // then Shutdown kills the rest
  while (!AllExited() && Clock::now() < deadline) {
    ReapChildren();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Shutdown();  // kills what is left, removes the group's objects and the registration
  return 128 + sig;
}

}  // namespace ckpt::group::internal

namespace ckpt::group {

int RunGroup(platform::Env* env, const CoordinatorOptions& options,
             const std::vector<std::vector<std::string>>& launches) {
  internal::Coordinator c(env, options);
  return c.Run(launches);
}

}  // namespace ckpt::group
