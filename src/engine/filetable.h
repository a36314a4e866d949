// The table of files the image refers to (mapped files, files behind
// descriptors), identified at dump by device and inode, and the check at
// restore that a file is still the one that was dumped. Not thread-safe.
#pragma once

#include <sys/stat.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

class FileTable {
 public:
  // Adds the file `path` whose stat is `st` (once per device and inode);
  // `elf` asks for its build-id. Returns its index.
  int Add(const std::string& path, const struct stat& st, bool elf);
  std::vector<FileRef>& files() { return files_; }

 private:
  std::map<std::pair<std::uint64_t, std::uint64_t>, int> index_;
  std::vector<FileRef> files_;
};

// The GNU build-id note of the ELF file at `path`, or "" if it has none.
std::string ReadBuildId(const std::string& path);
// Checks that `f.path` is still the file that was dumped: same size, mtime
// and build-id. The error names the file and what differs.
Status VerifyFile(const FileRef& f);
// Strips the " (deleted)" suffix /proc adds to unlinked files.
std::string StripDeleted(const std::string& path, bool* deleted);

}  // namespace ckpt::engine
