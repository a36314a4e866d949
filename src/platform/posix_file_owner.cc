#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "platform/file_owner.h"
#include "platform/posix_util.h"

namespace ckpt::platform {

Result<bool> OwnedByCurrentUser(const std::string& path, std::string* why) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
  if (st.st_uid != ::geteuid()) {
    *why = "it belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " +
           std::to_string(::geteuid()) + ")";
    return false;
  }
  if ((st.st_mode & 022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *why = std::string("other users may write it (mode ") + mode + ")";
    return false;
  }
  return true;
}

}  // namespace ckpt::platform
