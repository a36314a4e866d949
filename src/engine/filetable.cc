#include "engine/filetable.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

std::int64_t MtimeNs(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string Hex(const std::string& b) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : b) {
    o.push_back(d[c >> 4]);
    o.push_back(d[c & 15]);
  }
  return o;
}

}  // namespace

std::string StripDeleted(const std::string& path, bool* deleted) {
  static const std::string kSuffix = " (deleted)";
  if (path.size() > kSuffix.size() &&
      path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    if (deleted != nullptr) *deleted = true;
    return path.substr(0, path.size() - kSuffix.size());
  }
  if (deleted != nullptr) *deleted = false;
  return path;
}

int FileTable::Add(const std::string& path, const struct stat& st, bool elf) {
  auto key = std::make_pair(static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino));
  auto it = index_.find(key);
  if (it != index_.end()) {
    if (elf && files_[it->second].build_id.empty() && !files_[it->second].deleted) {
      files_[it->second].build_id = ReadBuildId(path);
    }
    return it->second;
  }
  FileRef f;
  f.path = StripDeleted(path, &f.deleted);
  if (st.st_nlink == 0 && S_ISREG(st.st_mode)) f.deleted = true;
  f.size = static_cast<std::uint64_t>(st.st_size);
  f.mtime_ns = MtimeNs(st);
  f.mode = st.st_mode;
  f.ino = st.st_ino;
  f.dev = st.st_dev;
  if (elf && !f.deleted && S_ISREG(st.st_mode)) f.build_id = ReadBuildId(f.path);
  files_.push_back(std::move(f));
  int idx = static_cast<int>(files_.size() - 1);
  index_[key] = idx;
  return idx;
}

std::string ReadBuildId(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  Elf64_Ehdr eh;
  if (::pread(fd, &eh, sizeof eh, 0) == static_cast<ssize_t>(sizeof eh) &&
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
      eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 256) {
    for (int i = 0; i < eh.e_phnum && out.empty(); ++i) {
      Elf64_Phdr ph;
      if (::pread(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof ph)) != sizeof ph) break;
      if (ph.p_type != PT_NOTE || ph.p_filesz > 65536) continue;
      std::string notes(ph.p_filesz, '\0');
      if (::pread(fd, notes.data(), notes.size(), static_cast<off_t>(ph.p_offset)) !=
          static_cast<ssize_t>(notes.size())) {
        break;
      }
      std::size_t p = 0;
      while (p + sizeof(Elf64_Nhdr) <= notes.size()) {
        Elf64_Nhdr nh;
        std::memcpy(&nh, notes.data() + p, sizeof nh);
        std::size_t name_at = p + sizeof nh;
        std::size_t desc_at = name_at + ((nh.n_namesz + 3) & ~3u);
        std::size_t next = desc_at + ((nh.n_descsz + 3) & ~3u);
        if (next > notes.size() || desc_at + nh.n_descsz > notes.size()) break;
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            std::memcmp(notes.data() + name_at, "GNU", 4) == 0) {
          out = notes.substr(desc_at, nh.n_descsz);
          break;
        }
        p = next;
      }
    }
  }
  ::close(fd);
  return out;
}

Status VerifyFile(const FileRef& f) {
  struct stat st;
  if (::stat(f.path.c_str(), &st) != 0) {
    return FailedPrecondition("file " + f.path +
                              " used by the dumped process is missing: " + std::strerror(errno));
  }
  std::string what;
  if (static_cast<std::uint64_t>(st.st_size) != f.size) {
    what = "size " + std::to_string(f.size) + " at dump, " + std::to_string(st.st_size) + " now";
  } else if (MtimeNs(st) != f.mtime_ns) {
    what = "modification time changed (" + std::to_string(f.mtime_ns) + " ns at dump, " +
           std::to_string(MtimeNs(st)) + " ns now)";
  } else if (!f.build_id.empty()) {
    std::string now = ReadBuildId(f.path);
    if (now != f.build_id)
      what = "build-id " + Hex(f.build_id) + " at dump, " + (now.empty() ? "none" : Hex(now)) + " now";
  }
  if (!what.empty()) {
    return FailedPrecondition("file " + f.path + " changed since the dump (" + what +
                              "); restoring would map different contents");
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
