// System V message queues: permissions, byte limit and every queued message
// with its type, in order, read without removing them (msgrcv MSG_COPY),
// and sent again into a queue created with the same id and key.
#include <errno.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

#include "engine/proc.h"
#include "engine/sysv.h"
#include "platform/posix_util.h"

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

namespace ckpt::engine {

using platform::PosixError;

Status DumpMsgQueues(const std::vector<SysvMember>& members, const std::vector<IpcObjectId>& extra,
                     TreeModel* t) {
  std::set<pid_t> pids;
  for (const auto& m : members) pids.insert(m.pid);
  ASSIGN_OR_RETURN(auto rows, ListSysv("msg"));
  for (const auto& row : rows) {
    // key msqid perms cbytes qnum lspid lrpid ...
    if (row.size() < 7) continue;
    int id = std::atoi(row[1].c_str());
    bool used = pids.count(std::atoi(row[5].c_str())) != 0 || pids.count(std::atoi(row[6].c_str())) != 0;
    used = used || std::any_of(extra.begin(), extra.end(),
                               [&](const IpcObjectId& x) { return x.kind == 'q' && x.id == id; });
    for (const auto& m : members) {
      used = used || MemberBlockedOn(m, SYS_msgsnd, id) || MemberBlockedOn(m, SYS_msgrcv, id);
    }
    if (!used) continue;
    struct msqid_ds ds;
    if (::msgctl(id, IPC_STAT, &ds) != 0) continue;  // removed meanwhile
    MsgQueue q;
    q.id = id;
    q.key = static_cast<std::int32_t>(ds.msg_perm.__key);
    q.mode = ds.msg_perm.mode & 0777;
    q.uid = ds.msg_perm.uid;
    q.gid = ds.msg_perm.gid;
    q.qbytes = ds.msg_qbytes;
    std::size_t cap = ds.msg_qbytes + sizeof(long);
    std::string buf(cap, '\0');
    for (msgqnum_t i = 0; i < ds.msg_qnum; ++i) {
      ssize_t n = ::msgrcv(id, buf.data(), cap - sizeof(long), static_cast<long>(i), IPC_NOWAIT | MSG_COPY);
      if (n < 0)
        return PosixError("msgrcv(MSG_COPY)",
                          "message " + std::to_string(i) + " of queue " + std::to_string(id), errno);
      SysvMessage m;
      long type;
      std::memcpy(&type, buf.data(), sizeof type);
      m.type = type;
      m.text = buf.substr(sizeof(long), static_cast<std::size_t>(n));
      q.messages.push_back(std::move(m));
    }
    t->queues.push_back(std::move(q));
  }
  return Status::Ok();
}

Result<int> CreateMsgQueue(const MsgQueue& q) {
  ASSIGN_OR_RETURN(int id, CreateWithId("msg", q.id, [&] {
                     return ::msgget(q.key, IPC_CREAT | IPC_EXCL | static_cast<int>(q.mode & 0777));
                   }));
  auto fail = [&](const char* op) -> Status {
    int e = errno;
    ::msgctl(id, IPC_RMID, nullptr);
    return PosixError(op, "message queue " + std::to_string(id), e);
  };
  struct msqid_ds ds;
  if (::msgctl(id, IPC_STAT, &ds) != 0) return fail("msgctl(IPC_STAT)");
  ds.msg_perm.uid = q.uid;
  ds.msg_perm.gid = q.gid;
  ds.msg_perm.mode = static_cast<unsigned short>(q.mode & 0777);
  msglen_t def = ds.msg_qbytes;
  ds.msg_qbytes = q.qbytes;
  if (::msgctl(id, IPC_SET, &ds) != 0) {
    // Raising the limit above msgmnb needs CAP_SYS_RESOURCE: keep the default.
    ds.msg_qbytes = def;
    if (::msgctl(id, IPC_SET, &ds) != 0) return fail("msgctl(IPC_SET)");
  }
  std::string buf;
  for (const auto& m : q.messages) {
    buf.assign(sizeof(long), '\0');
    long type = static_cast<long>(m.type);
    std::memcpy(buf.data(), &type, sizeof type);
    buf += m.text;
    if (::msgsnd(id, buf.data(), m.text.size(), IPC_NOWAIT) != 0) return fail("msgsnd");
  }
  return id;
}

}  // namespace ckpt::engine
