#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "platform/file_owner.h"
#include "platform/posix_util.h"

namespace ckpt::platform {

Result<std::unique_ptr<image::RandomAccessSource>> OpenCheckingOwner(const std::string& path, bool* own,
                                                                     std::string* why) {
  struct stat st;
  ASSIGN_OR_RETURN(int fd, OpenForReading(path, &st));
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return FailedPrecondition(path + " is not a regular file");
  }
  *own = true;
  if (st.st_uid != ::geteuid()) {
    *own = false;
    *why = "it belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " +
           std::to_string(::geteuid()) + ")";
  } else if ((st.st_mode & 022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *own = false;
    *why = std::string("other users may write it (mode ") + mode + ")";
  }
  return NewFdSource(path, fd, static_cast<std::uint64_t>(st.st_size));
}

}  // namespace ckpt::platform
