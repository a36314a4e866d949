#include "lib/control_group.h"

#include <chrono>
#include <thread>

#include "lib/control.h"
#include "platform/secure.h"
#include "platform/socket.h"

namespace ckpt::lib {

namespace {

int GroupWaitMs(double timeout) {
  return timeout <= 0 ? -1 : static_cast<int>(timeout * 1000);
}

// Connects to the coordinator and proves this client belongs (the group's
// secret, from the owner-only registration).
Result<std::unique_ptr<group::Channel>> ConnectGroup(const RegistrationRecord& reg) {
  group::Auth auth;
  if (!platform::HexDecode(reg.secret_hex, &auth.secret))
    return Corruption("group " + reg.group + "'s registration holds a malformed secret");
  auto sock = platform::ConnectLoopback(reg.port);
  if (!sock.ok()) return sock.status().WithContext("group " + reg.group + "'s coordinator");
  auto ch = std::make_unique<group::Channel>(std::move(sock).value());
  RETURN_IF_ERROR(ch->Send(group::Msg::kAuth, group::EncodeAuth(auth)));
  return ch;
}

// The coordinator's answer, each message within `timeout` s: kClientReply (flag 1: its text is the image's
// path) or a refusal. With `pump`, a streamed image comes first: kData
// messages, each given to `pump`, and kEnd saying whether it is complete
// (then *streamed is set).
Result<group::Note> AwaitGroupReply(group::Channel* ch, const std::string& name, double timeout,
                                    const ImagePump* pump = nullptr, bool* streamed = nullptr) {
  for (;;) {
    Status st = ch->WaitReadable(GroupWaitMs(timeout));
    if (st.code() == Code::kTimeout) {
      return Timeout("group " + name + " did not answer within " + FormatSeconds(timeout) +
                     "; the checkpoint may still complete (see `ckpt inspect` of the group's "
                     "image directory)");
    }
    if (!st.ok()) return st.WithContext("group " + name + "'s coordinator");
    auto reply = ch->Recv();
    if (!reply.ok()) return IoError("group " + name + "'s coordinator ended before answering");
    if (pump != nullptr && reply->type == group::Msg::kData) {
      RETURN_IF_ERROR((*pump)(reply->payload));
      continue;
    }
    group::Note n;
    if (!group::DecodeNote(reply->payload, &n).ok())
      return Corruption("malformed reply from the coordinator");
    if (reply->type == group::Msg::kRefused) return FailedPrecondition(n.text);
    if (n.flag != 1) return IoError("group " + name + ": " + n.text);
    if (pump != nullptr && reply->type == group::Msg::kEnd) {
      *streamed = true;
      continue;
    }
    return n;
  }
}

}  // namespace

Result<RegistrationRecord> FindGroup(platform::Env* env, const std::vector<std::string>& dirs,
                                     const std::string& name, const std::string& refused) {
  std::vector<std::string> seen;
  for (ProgramTarget& t : ListRunning(env, dirs)) {
    if (!t.reg.is_group()) continue;
    if (t.reg.group == name || t.reg.id == name) return std::move(t.reg);
    seen.push_back(t.reg.group);
  }
  std::string known;
  for (const auto& s : seen) known += (known.empty() ? "" : ", ") + s;
  return NotFound("no running group named '" + name + "'" +
                  (known.empty() ? "" : " (running: " + known + ")") +
                  (refused.empty() ? "" : " (" + refused + ")"));
}

Result<std::string> GroupCheckpoint(const RegistrationRecord& reg, bool exit, double timeout) {
  ASSIGN_OR_RETURN(auto ch, ConnectGroup(reg));
  RETURN_IF_ERROR(
      ch->Send(group::Msg::kClientCheckpoint, group::EncodeNote({0, static_cast<std::uint8_t>(exit), ""})));
  // The coordinator enforces the members' own timeout; this one bounds how
  // long the command waits for its answer.
  ASSIGN_OR_RETURN(auto n, AwaitGroupReply(ch.get(), reg.group, timeout));
  return n.text;
}

Result<HeldGroup> GroupCheckpointAndHold(const RegistrationRecord& reg, double timeout,
                                         const ImagePump& pump) {
  HeldGroup h;
  h.name = reg.group;
  h.coordinator_pid = reg.pid;
  ASSIGN_OR_RETURN(h.channel, ConnectGroup(reg));
  // Flag 1 asks for the image over this connection (a coordinator before
  // streamed holds ignores it and names a file).
  RETURN_IF_ERROR(h.channel->Send(group::Msg::kClientHold,
                                  group::EncodeNote({0, static_cast<std::uint8_t>(pump ? 1 : 0), ""})));
  bool streamed = false;
  auto n = AwaitGroupReply(h.channel.get(), h.name, timeout, pump ? &pump : nullptr, &streamed);
  if (!n.ok()) {
    // Closing the connection cancels the hold: if the checkpoint completes
    // after all, the members go on.
    h.channel->Shutdown();
    return n.status();
  }
  h.image = n->text;
  h.streamed = streamed;
  if (!streamed && h.image.empty()) return Corruption("group " + h.name + "'s coordinator named no image");
  return h;
}

Status DecideHeldGroup(platform::Env* env, HeldGroup* held, bool exit, double timeout) {
  if (!held->channel) return FailedPrecondition("group " + held->name + " is not held");
  Status st = held->channel->Send(group::Msg::kClientDecide,
                                  group::EncodeNote({0, static_cast<std::uint8_t>(exit ? 1 : 0), ""}));
  auto ack = st.ok() ? AwaitGroupReply(held->channel.get(), held->name, timeout) : Result<group::Note>(st);
  held->channel->Shutdown();
  held->channel.reset();
  if (!ack.ok()) return ack.status().WithContext("deciding the hold of group " + held->name);
  if (!exit) return Status::Ok();
  // The members stop; the coordinator ends once they have.
  if (!WaitGone(env, held->coordinator_pid, timeout))
    return Timeout("group " + held->name + "'s coordinator (pid " + std::to_string(held->coordinator_pid) +
                   ") has not ended within " + FormatSeconds(timeout) +
                   " after its members were told to stop");
  return Status::Ok();
}

}  // namespace ckpt::lib
