// The part of a process image (kind 3) that spans processes: the tree of
// members and the objects they share — shared memory objects (stored once),
// System V semaphores and message queues, pipes between members. Portable
// plain values and their encoding (docs/image-format.md, "Process trees");
// not thread-safe to mutate concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"
#include "image/reader.h"
#include "image/section_types.h"
#include "image/writer.h"
#include "util/status.h"

namespace ckpt::engine {

using image::kSecShmObjects;
using image::kSecShmPages;
using image::kSecSysvMsg;
using image::kSecSysvSem;
using image::kSecTree;

// One process of the tree. Member sections are named "PID/core", "PID/vmas" ...
struct Member {
  std::int32_t pid = 0, ppid = 0, pgid = 0, sid = 0;
  bool zombie = false;
  std::int32_t exit_status = 0;  // a zombie's wait status
};

enum class ShmKind : std::uint8_t {
  kSharedAnon = 0,  // MAP_SHARED|MAP_ANONYMOUS, inherited across fork
  kMemfd = 1,       // memfd_create
  kPosixShm = 2,    // a named file under /dev/shm (shm_open, sem_open)
  kDeleted = 3,     // an unlinked file of a tmpfs (shm_unlink'ed, sem_unlink'ed)
  kSysv = 4,        // a System V shared memory segment
};

struct ShmObject {
  std::uint32_t id = 0;
  ShmKind kind = ShmKind::kSharedAnon;
  std::string name;  // path (kPosixShm, kDeleted), memfd name, or "" (ids for kSysv)
  std::uint64_t size = 0;
  std::uint32_t mode = 0;  // permission bits (kSysv: shm_perm.mode)
  std::uint32_t uid = 0, gid = 0;
  std::uint64_t dev = 0, ino = 0;  // identity on the dumping host (informational)
  std::int32_t sysv_key = 0, sysv_id = 0;
  // Byte offsets of the stored pages (4096 each) in section "shm.ID".
  std::vector<PageRun> runs;
};

// A mapping [start, end) of member `pid` that maps object `object` at byte
// offset `pgoff`.
struct ShmAttach {
  std::int32_t pid = 0;
  std::uint64_t start = 0, end = 0, pgoff = 0;
  std::uint32_t object = 0;
};

// Descriptor `fd` of member `pid` refers to object `object` (a memfd, a
// descriptor from shm_open ...).
struct ShmFd {
  std::int32_t pid = 0, fd = 0;
  std::uint32_t object = 0;
};

struct SemSet {
  std::int32_t id = 0, key = 0;
  std::uint32_t mode = 0, uid = 0, gid = 0;
  std::vector<std::uint16_t> values;
  std::vector<std::int32_t> sempid;  // last process to operate on each semaphore
};

// The SEM_UNDO adjustments member `pid` holds on set `semid`.
struct SemUndo {
  std::int32_t pid = 0, semid = 0;
  std::vector<std::int16_t> adj;
};

struct SysvMessage {
  std::int64_t type = 0;
  std::string text;
};

struct MsgQueue {
  std::int32_t id = 0, key = 0;
  std::uint32_t mode = 0, uid = 0, gid = 0;
  std::uint64_t qbytes = 0;
  std::vector<SysvMessage> messages;  // in queue order
};

struct TreeModel {
  std::vector<Member> members;  // the root first, every parent before its children
  std::vector<ShmObject> objects;
  std::vector<ShmAttach> attaches;
  std::vector<ShmFd> fds;
  std::vector<SemSet> sems;
  std::vector<SemUndo> undo;
  std::vector<MsgQueue> queues;
};

std::string EncodeTree(const std::vector<Member>& m);
std::string EncodeShmObjects(const TreeModel& t);
std::string EncodeSemSets(const TreeModel& t);
std::string EncodeMsgQueues(const std::vector<MsgQueue>& q);

// The section name prefix of member `pid`'s sections ("PID/").
std::string MemberPrefix(std::int32_t pid);
// The prefix member `pid`'s sections carry in an image of the tree `t`:
// "" when the tree is a single process (the layout of a one-process image),
// else MemberPrefix(pid).
std::string SectionPrefix(const TreeModel& t, std::int32_t pid);
// Name of the section holding object `id`'s pages.
std::string ShmPagesName(std::uint32_t id);

// Writes the tree-level metadata sections (not the object pages).
Status WriteTreeModel(image::ImageWriter* w, const TreeModel& t);
// Reads them. An image without a `tree` section is a single-process image:
// one member, unprefixed sections, no shared objects.
Result<TreeModel> ReadTreeModel(const image::ImageReader& r, bool* is_tree);

const char* ShmKindName(ShmKind k);

}  // namespace ckpt::engine
