// Inside the group coordinator (coordinator.h): its state, shared by
// coordinator.cc (connections, members, the run) and coordinator_checkpoint.cc
// (coordinated checkpoints, holds for migrations). Not a public interface.
#pragma once

#include <atomic>
#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "group/coordinator.h"
#include "group/event_queue.h"
#include "group/group_image.h"
#include "group/protocol.h"
#include "image/reader.h"
#include "image/writer.h"
#include "lib/hold.h"
#include "platform/process.h"
#include "platform/socket.h"

namespace ckpt::group::internal {

using Clock = std::chrono::steady_clock;

// A new connection proves it belongs to the group (kAuth with the group's
// secret, then kHello or kClientCheckpoint) within this.
constexpr int kHandshakeMs = 10000;
// Connections being checked at once; beyond it, new ones are closed at once.
constexpr std::size_t kMaxHandshakes = 32;
// A greeting is small: a hello carries a command line.
constexpr std::uint32_t kMaxGreeting = 1u << 20;
// Refused connections reported on stderr (then only counted).
constexpr int kRefusalsShown = 5;
// The epoch of the hold after a resume for a migration (CKPT_GROUP_HOLD).
constexpr std::uint64_t kHoldEpoch = 1;
// Exit status when a migration's handoff is abandoned before the group ran
// (as a held program's, docs/api.md).
constexpr int kExitHandoffAborted = 76;

// A `ckpt checkpoint GROUP` client waiting for its checkpoint.
struct Client {
  std::shared_ptr<Channel> channel;
  bool exit = false;
  bool hold = false;    // kClientHold: the members stay parked until it decides
  bool stream = false;  // with hold: the image goes to it (kData), not into a file
};

// One connection in its handshake, on its own thread so that a silent or
// slow peer never holds up the others.
struct PendingConnection {
  std::shared_ptr<Channel> channel;
  std::thread thread;
  std::atomic<bool> done{false};
};

struct MemberState {
  std::vector<std::string> launch;
  std::unique_ptr<platform::ChildProcess> child;
  std::shared_ptr<Channel> channel;
  Hello hello;
  bool connected = false;
  std::optional<int> exit_status;
  // Set by the member's reader on kBye: the library ended in order. Under
  // Wine, Ctrl-C's default handler ends a process with status 0 and no kBye.
  std::shared_ptr<std::atomic<bool>> said_bye = std::make_shared<std::atomic<bool>>(false);
};

class Coordinator {
 public:
  Coordinator(platform::Env* env, CoordinatorOptions o) : env_(env), opt_(std::move(o)) {}
  int Run(const std::vector<std::vector<std::string>>& launches);

 private:
  void Say(const std::string& m) const {
    if (!opt_.quiet) (void)std::fprintf(stderr, "ckpt group %s: %s\n", opt_.name.c_str(), m.c_str());
  }
  void Error(const std::string& m) const {
    (void)std::fprintf(stderr, "ckpt: error: group %s: %s\n", opt_.name.c_str(), m.c_str());
  }
  std::string Who(int rank) const;
  Status LoadResumeImage();
  Status PublishRegistration();
  // [{"program": ..., "launch": [...], "args": [...]}, ...] for `ckpt migrate GROUP`.
  void AcceptLoop();
  void ReapHandshakes(bool all);
  // Checks a new connection; queues its hello or checkpoint request, or refuses it.
  void Handshake(const std::shared_ptr<Channel>& ch);
  void Refuse(const std::shared_ptr<Channel>& ch, const std::string& why);
  void ReadLoop(int rank, const std::shared_ptr<Channel>& ch,
                const std::shared_ptr<std::atomic<bool>>& said_bye);
  // Handles one event outside a checkpoint.
  void Handle(Event& e);
  bool OnHello(Event& e);
  // Reaps children; returns a message if a member has ended abnormally.
  std::string ReapChildren();
  bool StartMembers();
  // Runs the group to its end; returns the termination request's signal
  // (0: none; then `failure` says why the group was stopped, if it was).
  int Loop(std::string* failure);
  // After Ctrl-C or kill: members end, the group's objects are removed.
  int StopOnRequest(int sig);
  bool AllExited() const;
  // The signal of a termination request that comes soon after members ended
  // (0: none). Waits up to 3 s while a member looks ended by Ctrl-C: by
  // SIGINT, by STATUS_CONTROL_C_EXIT, or by status 0 without its kBye;
  // otherwise `min_wait`.
  int AwaitTerminationRequest(std::chrono::milliseconds min_wait) const;
  // `stream`: the image goes to `holder` as kData messages instead of into
  // a file (*image_path then stays empty; no image of the group's changes).
  Status Checkpoint(bool exit_after, std::string* image_path, Channel* holder = nullptr, bool stream = false);
  // The holder's decision after its image: true = the members exit.
  bool AwaitDecision(Channel* holder, std::string* note);
  // Started for a migration: every member parks at its first quiescent
  // point, then the migration's handoff port decides (lib/hold.h).
  Status HoldAfterStart();
  Status CollectReady(std::uint64_t epoch, std::vector<Ready>* ready);
  Status ReceivePart(int rank, const Request& req, image::ImageWriter* w, std::string* into);
  Status WriteImage(std::uint64_t epoch, std::uint64_t seq, const std::vector<Ready>& ready,
                    image::Sink* file);
  // The image into a new file linked as `final_path` (never replacing one).
  Status WriteImageFile(std::uint64_t epoch, std::uint64_t seq, const std::vector<Ready>& ready,
                        const std::string& final_path);
  void Broadcast(Msg type, const Note& n);
  std::uint64_t NextSeq();
  void Shutdown();

  platform::Env* env_;
  CoordinatorOptions opt_;
  std::string gid_;
  std::unique_ptr<platform::Listener> listener_;
  std::vector<MemberState> members_;
  EventQueue events_;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::list<PendingConnection> handshakes_;  // the acceptor's (Shutdown's once it has ended)
  std::atomic<int> refusals_{0};
  std::string secret_;  // kSecretBytes random bytes
  std::vector<std::thread> readers_;
  std::vector<std::shared_ptr<Channel>> clients_waiting_;
  std::vector<Client> deferred_clients_;
  lib::Handoff handoff_;  // CKPT_HOLD_PORT/TOKEN: resumed for a migration
  double hold_timeout_ = lib::kDefaultHoldTimeout;
  bool ask_pending_ = false, ask_exit_ = false;
  std::uint64_t epoch_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t resumes_ = 0;
  std::uint64_t written_ = 0;
  bool exit_requested_ = false;
  std::string last_image_;
  std::string registration_path_;
  // Phases of the last checkpoint (seconds, bytes), reported in its progress line.
  double t_quiesce_ = 0, t_comm_ = 0, t_members_ = 0;
  std::uint64_t comm_bytes_ = 0, member_bytes_ = 0;
  std::vector<ObjectRecord> resume_objects_;
};

}  // namespace ckpt::group::internal
