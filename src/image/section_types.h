// Every section type of every image kind, in one place, so that no two
// parts of ckpt give one number two meanings (docs/image-format.md,
// "Section types"). Program images (kind 1) use 1-15, group images (kind 2)
// 16-31, process images (kind 3) the 0x0300 block; the modules that write
// them (src/lib/program_image.h, src/group/group_image.h, src/engine/model.h
// and tree_model.h) take their numbers from here. A number is never reused,
// even after its section is retired. Header-only; constants only.
#pragma once

#include <cstdint>
#include <string_view>

namespace ckpt::image {

// --- Program images (src/lib/program_image.h) ---------------------------------
inline constexpr std::uint32_t kSecMeta = 1;      // one: key/value facts about the image ("meta")
inline constexpr std::uint32_t kSecProgress = 2;  // zero or one: where the program was ("progress")
inline constexpr std::uint32_t kSecVar = 3;       // one per registered variable, named after it

// --- Group images (src/group/group_image.h) -----------------------------------
inline constexpr std::uint32_t kSecGroup = 16;    // one: the group and its members
inline constexpr std::uint32_t kSecObjects = 17;  // one: the group's named objects
inline constexpr std::uint32_t kSecSegment = 18;  // one per shared segment: its bytes
inline constexpr std::uint32_t kSecMember = 19;   // one per member: its program image

// --- Process images (src/engine/model.h, tree_model.h) ------------------------
// The unit of memory in process images is engine::kPageSize.
inline constexpr std::uint32_t kSecCore = 0x0301;     // one: process-wide state
inline constexpr std::uint32_t kSecThread = 0x0302;   // one per thread, name "thread.TID"
inline constexpr std::uint32_t kSecVmas = 0x0303;     // one: the memory map
inline constexpr std::uint32_t kSecFiles = 0x0304;    // one: files referenced by mappings and fds
inline constexpr std::uint32_t kSecFds = 0x0305;      // one: the descriptor table
inline constexpr std::uint32_t kSecSignals = 0x0306;  // one: handlers and process-wide pending signals
inline constexpr std::uint32_t kSecPagemap = 0x0307;  // one: runs of pages stored in kSecPages
inline constexpr std::uint32_t kSecPages =
    0x0308;  // one (or kSecPageRecords): page contents, in pagemap order
inline constexpr std::uint32_t kSecBlob =
    0x0309;  // contents of a pipe ("pipe.ID") or deleted file ("file.N")
inline constexpr std::uint32_t kSecVdso = 0x030A;        // one: the dumping kernel's vDSO bytes
inline constexpr std::uint32_t kSecTree = 0x030B;        // one: the members
inline constexpr std::uint32_t kSecShmObjects = 0x030C;  // one: shared memory objects and who maps them
inline constexpr std::uint32_t kSecSysvSem = 0x030D;     // one: System V semaphore sets and SEM_UNDO
inline constexpr std::uint32_t kSecSysvMsg = 0x030E;     // one: System V message queues and messages
inline constexpr std::uint32_t kSecShmPages = 0x030F;    // "shm.ID": the stored pages of object ID
// One: every thread's credentials (images written before it existed have
// none; docs/image-format.md).
inline constexpr std::uint32_t kSecCreds = 0x0310;
// One (or kSecPages): page records, each the runs it holds, then their
// contents; a restore reads them as they come, before the pagemap.
inline constexpr std::uint32_t kSecPageRecords = 0x0311;
// Zero or one: eventfd, signalfd, timerfd and epoll files (kEvent descriptors).
inline constexpr std::uint32_t kSecEvents = 0x0312;
// Zero or one: file locks held through descriptors (POSIX, OFD, flock).
inline constexpr std::uint32_t kSecLocks = 0x0313;
// Zero or one: POSIX timers (timer_create).
inline constexpr std::uint32_t kSecPosixTimers = 0x0314;
// Zero or one: Unix socket pairs (kSocket descriptors); their queued data is
// in tree-level blobs "sock.INODE".
inline constexpr std::uint32_t kSecSockets = 0x0315;
// Zero or one: TCP and UDP sockets without a connection (kInet descriptors).
inline constexpr std::uint32_t kSecInetSockets = 0x0316;
// Zero or one: the connections of kInetConnected sockets (their peer, and for
// TCP the repair state and queued bytes), by socket inode.
inline constexpr std::uint32_t kSecConnections = 0x0317;
// Zero or one: listening Unix sockets (kUnixListener descriptors).
inline constexpr std::uint32_t kSecUnixListeners = 0x0318;
// Zero or one: Unix sockets connected to a named peer outside (--external-unix).
inline constexpr std::uint32_t kSecUnixExternal = 0x0319;
// Incremental dumps (incremental.h). One, not required: 16 random bytes
// that name the image ("identity").
inline constexpr std::uint32_t kSecIdentity = 0x031A;
// Zero or one per member, not required: the dirty tracker the dump armed
// ("tracking").
inline constexpr std::uint32_t kSecTracking = 0x031B;
// Zero or one: the parent image of an incremental image ("parent").
inline constexpr std::uint32_t kSecParent = 0x031C;
// One per member of an incremental image: the pages the parent chain holds
// ("inherited", encoded as a pagemap).
inline constexpr std::uint32_t kSecInherited = 0x031D;
// One per member of an incremental image instead of kSecPageRecords (same
// records): a ckpt that predates incremental images finds no pages section
// and refuses the image instead of restoring it without its parent's pages.
inline constexpr std::uint32_t kSecDeltaPages = 0x031E;
// Zero or one: the image is a pre-copy round of a live migration, its pages
// copied while the processes ran ("precopy"): only a parent, never restored.
inline constexpr std::uint32_t kSecPrecopy = 0x031F;
// One per member of a post-copy migration's image (`--lazy`), required: the
// pages the migration's source still holds and sends once the process runs
// on the target ("remote", encoded as a pagemap; also in `inherited`).
inline constexpr std::uint32_t kSecRemote = 0x0320;

struct SectionTypeInfo {
  std::uint32_t type;
  std::string_view name;
};

// Every type above with a short name, for messages and `ckpt inspect`.
inline constexpr SectionTypeInfo kSectionTypes[] = {
    {kSecMeta, "meta"},
    {kSecProgress, "progress"},
    {kSecVar, "var"},
    {kSecGroup, "group"},
    {kSecObjects, "objects"},
    {kSecSegment, "segment"},
    {kSecMember, "member"},
    {kSecCore, "core"},
    {kSecThread, "thread"},
    {kSecVmas, "vmas"},
    {kSecFiles, "files"},
    {kSecFds, "fds"},
    {kSecSignals, "signals"},
    {kSecPagemap, "pagemap"},
    {kSecPages, "pages"},
    {kSecBlob, "blob"},
    {kSecVdso, "vdso"},
    {kSecTree, "tree"},
    {kSecShmObjects, "shm objects"},
    {kSecSysvSem, "sysv sem"},
    {kSecSysvMsg, "sysv msg"},
    {kSecShmPages, "shm pages"},
    {kSecCreds, "creds"},
    {kSecPageRecords, "page records"},
    {kSecEvents, "events"},
    {kSecLocks, "locks"},
    {kSecPosixTimers, "posix timers"},
    {kSecSockets, "sockets"},
    {kSecInetSockets, "inet sockets"},
    {kSecConnections, "connections"},
    {kSecUnixListeners, "unix listeners"},
    {kSecUnixExternal, "unix external"},
    {kSecIdentity, "identity"},
    {kSecTracking, "tracking"},
    {kSecParent, "parent"},
    {kSecInherited, "inherited"},
    {kSecDeltaPages, "delta pages"},
    {kSecPrecopy, "precopy"},
    {kSecRemote, "remote"},
};

// The short name of section type `type`; empty when no ckpt part knows it.
constexpr std::string_view SectionTypeName(std::uint32_t type) {
  for (const auto& t : kSectionTypes)
    if (t.type == type) return t.name;
  return {};
}

namespace detail {
constexpr bool SectionTypesUnique() {
  for (const auto& a : kSectionTypes) {
    int same = 0;
    for (const auto& b : kSectionTypes) same += a.type == b.type || a.name == b.name;
    if (same != 1) return false;
  }
  return true;
}
}  // namespace detail
static_assert(detail::SectionTypesUnique(), "two section types share a number or a name");

}  // namespace ckpt::image
