// System V shared memory segments: restore-side creation with the exact id
// and key. Their contents and attachments are shared memory objects
// (shared_mem.cc); removal after a dump is in sysv_ipc.cc.
#include <errno.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#include "engine/sysv.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

Result<int> CreateShmSegment(const ShmObject& o) {
  key_t key = (o.mode & SHM_DEST) != 0 ? IPC_PRIVATE : static_cast<key_t>(o.sysv_key);
  ASSIGN_OR_RETURN(int id, CreateWithId("shm", o.sysv_id, [&] {
                     return ::shmget(key, o.size, IPC_CREAT | IPC_EXCL | static_cast<int>(o.mode & 0777));
                   }));
  struct shmid_ds ds;
  if (::shmctl(id, IPC_STAT, &ds) != 0) {
    int e = errno;
    ::shmctl(id, IPC_RMID, nullptr);
    return platform::PosixError("shmctl(IPC_STAT)", "segment " + std::to_string(id), e);
  }
  ds.shm_perm.uid = o.uid;
  ds.shm_perm.gid = o.gid;
  ds.shm_perm.mode = static_cast<unsigned short>(o.mode & 0777);
  if (::shmctl(id, IPC_SET, &ds) != 0) {
    int e = errno;
    ::shmctl(id, IPC_RMID, nullptr);
    return platform::PosixError("shmctl(IPC_SET)", "segment " + std::to_string(id), e);
  }
  return id;
}

}  // namespace ckpt::engine
