// The in-memory model of a process image (kind 3): what the dumper collects
// and the restorer consumes, plus the section types that carry it. The byte
// layout of every section is specified in docs/image-format.md ("Process
// images"). Plain values; not thread-safe to mutate concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "image/reader.h"
#include "image/section_types.h"
#include "image/writer.h"
#include "util/status.h"

namespace ckpt::engine {

// The unit of memory in process images (pagemap runs, pages sections,
// shared objects' runs): x86-64's base page.
inline constexpr std::uint64_t kPageSize = 4096;

// Section types of process images (the 0x0300 block of image/section_types.h,
// where each is described).
using image::kSecBlob;
using image::kSecConnections;
using image::kSecCore;
using image::kSecCreds;
using image::kSecDeltaPages;
using image::kSecEvents;
using image::kSecFds;
using image::kSecFiles;
using image::kSecIdentity;
using image::kSecInetSockets;
using image::kSecInherited;
using image::kSecLocks;
using image::kSecPagemap;
using image::kSecPageRecords;
using image::kSecPages;
using image::kSecParent;
using image::kSecPosixTimers;
using image::kSecPrecopy;
using image::kSecRemote;
using image::kSecSignals;
using image::kSecSockets;
using image::kSecThread;
using image::kSecTracking;
using image::kSecUnixExternal;
using image::kSecUnixListeners;
using image::kSecVdso;
using image::kSecVmas;

// Every metadata section starts with this version byte, then its fields
// as a tagged record (tagged.h, docs/image-format.md "Section encoding").
// Version 1 was the untagged layout (fields in a fixed order); 2 was taken
// by version 1's half-closed `connections` section; 3 is the tagged
// encoding. Adding a field does NOT need a new version: give it a new tag
// (never reuse one) and mark it kCritical when an older reader that
// ignored it would restore the process wrong. Only a change of the
// encoding itself bumps this number, and older readers then refuse every
// section by it.
inline constexpr std::uint8_t kModelVersion = 3;
// File name of the process image inside a dump directory.
inline constexpr const char* kImageFileName = "process.ckpt";

struct MmLayout {
  std::uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  std::uint64_t start_brk = 0, brk = 0, start_stack = 0;
  std::uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
};

struct Rlimit {
  std::uint64_t cur = 0, max = 0;
};

struct Core {
  std::int32_t pid = 0;
  std::string comm;
  std::int32_t exe_file = -1;  // index into files
  std::string cwd;
  std::uint32_t umask = 022;
  std::uint32_t personality = 0;
  std::vector<Rlimit> rlimits;  // RLIMIT_* order, 16 entries on Linux
  MmLayout mm;
  std::vector<std::uint64_t> auxv;  // key, value pairs up to and including AT_NULL
  std::string kernel_release;
  std::string host;
  std::int64_t dumped_at_ns = 0;
  std::uint32_t xsave_size = 0;
  // ITIMER_REAL, _VIRTUAL, _PROF: interval sec, usec, value sec, usec each.
  std::vector<std::uint64_t> itimers;
  // Bit 0: the process led its session; bit 1: it led its process group.
  std::uint32_t leader = 0;
};

// user_regs_struct, in the kernel's field order (27 x 64 bits on x86-64).
inline constexpr int kGpRegs = 27;

struct ThreadState {
  std::int32_t tid = 0;
  std::array<std::uint64_t, kGpRegs> gpregs{};
  std::string xsave;  // NT_X86_XSTATE as the kernel gives it
  std::uint64_t sigmask = 0;
  std::uint64_t rseq_ptr = 0;
  std::uint32_t rseq_len = 0, rseq_sig = 0;
  std::uint64_t clear_tid = 0;  // set_tid_address
  std::uint64_t altstack_sp = 0, altstack_size = 0;
  std::uint32_t altstack_flags = 0;
  std::uint64_t robust_list = 0, robust_len = 0;  // set_robust_list
  std::string comm;                               // the thread's name
  std::vector<std::string> pending;               // 128-byte siginfo_t each, thread-directed
};

enum class VmaKind : std::uint8_t {
  kAnon = 0,
  kFile = 1,
  kHeap = 2,
  kStack = 3,
  kVdso = 4,
  kVvar = 5,  // any [vvar*] region
  kVsyscall = 6,
  kSharedAnon = 7,  // MAP_SHARED|MAP_ANONYMOUS (/dev/zero (deleted))
  kSysvShm = 8,     // an attached System V shared memory segment (/SYSVkey)
};

// Vma flags.
inline constexpr std::uint32_t kVmaShared = 1u << 0;
inline constexpr std::uint32_t kVmaGrowsDown = 1u << 1;
inline constexpr std::uint32_t kVmaMayWrite = 1u << 2;
inline constexpr std::uint32_t kVmaHugePage = 1u << 3;    // MADV_HUGEPAGE
inline constexpr std::uint32_t kVmaNoHugePage = 1u << 4;  // MADV_NOHUGEPAGE
inline constexpr std::uint32_t kVmaDontFork = 1u << 5;    // MADV_DONTFORK
inline constexpr std::uint32_t kVmaWipeOnFork = 1u << 6;  // MADV_WIPEONFORK
inline constexpr std::uint32_t kVmaDontDump = 1u << 7;    // MADV_DONTDUMP
inline constexpr std::uint32_t kVmaLocked = 1u << 8;      // mlock (recorded, not restored)
inline constexpr std::uint32_t kVmaAllPages = 1u << 9;    // a deleted file's mapping: every page stored
// Maps a shared memory object of the tree (tree_model.h): its pages are
// stored once with the object, not in the process's pagemap.
inline constexpr std::uint32_t kVmaSharedObject = 1u << 10;

struct Vma {
  std::uint64_t start = 0, end = 0;
  std::uint32_t prot = 0;  // PROT_* bits
  std::uint32_t flags = 0;
  std::uint64_t pgoff = 0;  // in bytes
  std::int32_t file = -1;   // index into files
  VmaKind kind = VmaKind::kAnon;
  std::string name;  // the maps line's path or [name]
  // Dump time only, not stored: smaps shows pages of this mapping that
  // another process maps too (copy-on-write after fork).
  bool shares_pages = false;
  std::uint64_t size() const { return end - start; }
};

struct FileRef {
  std::string path;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::uint32_t mode = 0;
  std::uint64_t ino = 0;
  std::uint64_t dev = 0;
  std::string build_id;  // GNU build-id bytes for ELF files
  bool deleted = false;  // contents stored in blob "file.INDEX"
};

enum class FdKind : std::uint8_t {
  kRegular = 0,        // a path (file or directory) reopened by name
  kDevice = 1,         // a character device reopened by name (/dev/null, a tty)
  kFifo = 2,           // a named pipe reopened by name
  kPipe = 3,           // an anonymous pipe: both ends in the process, or reattached
  kDeleted = 4,        // a regular file unlinked while open: contents in the image
  kEvent = 5,          // an eventfd, signalfd, timerfd or epoll file: ProcessModel::events
  kSocket = 6,         // one end of a Unix socket pair inside the dumped set: ProcessModel::sockets
  kInet = 7,           // a listening TCP or bound UDP socket: ProcessModel::inet_sockets
  kInetConnected = 8,  // an established TCP or connected UDP socket: ProcessModel::inet_sockets
  kUnixListener = 9,   // a listening Unix socket with a name: ProcessModel::unix_listeners
  kUnixExternal = 10,  // a Unix socket whose peer outside is connected to again: ProcessModel::unix_external
};

struct Fd {
  std::int32_t fd = 0;
  FdKind kind = FdKind::kRegular;
  std::uint32_t flags = 0;  // open flags from fdinfo, O_CLOEXEC included
  std::uint64_t pos = 0;
  std::int32_t file = -1;       // index into files (regular, device, fifo, deleted)
  std::uint64_t pipe_ino = 0;   // pipe inode (kPipe)
  bool pipe_write_end = false;  // kPipe: this fd is the write end
  bool pipe_internal = false;   // kPipe: nobody outside holds it: recreated (contents stored)
  std::int32_t dup_of = -1;     // shares its open file description with this lower fd
};

struct SigAction {
  std::uint64_t handler = 0, flags = 0, restorer = 0, mask = 0;
};

struct Signals {
  std::array<SigAction, 64> actions{};  // index: signal - 1
  std::vector<std::string> pending;     // process-wide, 128-byte siginfo_t each
};

// One thread's credentials, as /proc/PID/task/TID/status shows them (and
// securebits, which only the thread itself can read).
struct ThreadCreds {
  std::int32_t tid = 0;
  std::array<std::uint32_t, 4> uid{}, gid{};  // real, effective, saved, filesystem
  std::vector<std::uint32_t> groups;          // supplementary groups
  std::uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  std::uint32_t securebits = 0;
  bool no_new_privs = false;
  bool operator==(const ThreadCreds&) const = default;
};

struct Creds {
  bool recorded = false;       // false: an image from before credentials were recorded
  std::uint32_t dumpable = 1;  // prctl(PR_GET_DUMPABLE), process-wide
  std::vector<ThreadCreds> threads;
};

struct PageRun {
  std::uint64_t addr = 0;
  std::uint64_t pages = 0;
  // Not stored in images: the pages are also mapped by another process
  // (copy-on-write after fork), so the dump reads them without pinning.
  bool cow_shared = false;
};

// Everything except page contents and blobs.
enum class EventKind : std::uint8_t {
  kEventfd = 1,
  kSignalfd = 2,
  kTimerfd = 3,
  kEpoll = 4,
  kInotify = 5,
};

// One inotify watch: re-added by path at restore, under the same number.
struct InotifyWatch {
  std::int32_t wd = 0;
  std::uint32_t mask = 0;
  std::string path;
  bool operator==(const InotifyWatch&) const = default;
};

// One descriptor an epoll file watches, as the process registered it.
struct EpollWatch {
  std::int32_t tfd = 0;  // the watched descriptor's number in the process
  std::uint32_t events = 0;
  std::uint64_t data = 0;
  bool operator==(const EpollWatch&) const = default;
};

// An eventfd, signalfd, timerfd or epoll file, once per open file
// description (its other descriptors are Fd::dup_of it).
struct EventFile {
  std::int32_t fd = 0;
  EventKind kind = EventKind::kEventfd;
  std::uint32_t object = 0;         // members of a tree that share this file have the same number
  std::uint64_t count = 0;          // eventfd: the counter; timerfd: expirations not yet read
  bool semaphore = false;           // eventfd: EFD_SEMAPHORE
  std::uint64_t sigmask = 0;        // signalfd: the signals it reads (bit n-1 for signal n)
  std::int32_t clockid = 0;         // timerfd
  std::uint32_t settime_flags = 0;  // timerfd: TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET
  std::int64_t value_ns = 0;        // timerfd: time left until it fires (0: disarmed)
  std::int64_t interval_ns = 0;     // timerfd: period (0: once)
  std::int64_t wall_ns = 0;         // timerfd, absolute on a real-time clock: when it fires (CLOCK_REALTIME)
  std::vector<EpollWatch> watches;  // epoll
  std::vector<InotifyWatch> inotify;  // inotify (count: bytes of events queued at the dump, not restored)
};

enum class LockKind : std::uint8_t {
  kPosix = 1,  // fcntl F_SETLK: owned by the process
  kOfd = 2,    // fcntl F_OFD_SETLK: owned by the open file description
  kFlock = 3,  // flock(): owned by the open file description
};

// A lock held through descriptor `fd` (the lowest one of its open file
// description).
struct FileLock {
  std::int32_t fd = 0;
  LockKind kind = LockKind::kPosix;
  bool write = false;      // exclusive (F_WRLCK, LOCK_EX), else shared
  std::int64_t start = 0;  // POSIX and OFD: first byte
  std::int64_t len = 0;    // POSIX and OFD: bytes (0: to the end of the file)
  bool operator==(const FileLock&) const = default;
};

// A POSIX timer (timer_create), as /proc/PID/timers and timer_gettime show it.
struct PosixTimer {
  std::int32_t id = 0;  // the kernel's timer id (what timer_t holds for glibc)
  std::int32_t clockid = 0;
  std::int32_t notify = 0;  // SIGEV_SIGNAL or SIGEV_NONE, with SIGEV_THREAD_ID for one thread
  std::int32_t signo = 0;
  std::uint64_t value = 0;       // sigev_value
  std::int32_t tid = 0;          // SIGEV_THREAD_ID: the thread
  std::int64_t value_ns = 0;     // time left (0: disarmed)
  std::int64_t interval_ns = 0;  // period (0: once)
  std::int32_t overrun = 0;      // timer_getoverrun at the dump (not restored)
  bool operator==(const PosixTimer&) const = default;
};

// More of a socket's state (sock_options.h): options whose values differ
// from a new socket's of the same kind, as getsockopt gives them and
// setsockopt takes them back; multicast group memberships with their source
// filters; a classic BPF socket filter. Empty for most sockets.
struct SockOpt {
  std::int32_t level = 0, name = 0;
  std::string value;  // getsockopt's bytes
  bool operator==(const SockOpt&) const = default;
};

struct McastGroup {
  std::uint32_t ifindex = 0;
  std::string ifname;                // the device (found by name again at restore)
  std::string group;                 // struct sockaddr_in or sockaddr_in6 bytes
  std::uint32_t fmode = 0;           // MCAST_EXCLUDE (0) or MCAST_INCLUDE (1)
  std::vector<std::string> sources;  // sockaddr bytes, excluded or included
  bool operator==(const McastGroup&) const = default;
};

struct SockExtras {
  std::vector<SockOpt> options;
  std::vector<McastGroup> groups;
  std::string filter;  // struct sock_filter[]: classic BPF (SO_ATTACH_FILTER)
  bool filter_locked = false;
  bool operator==(const SockExtras&) const = default;
};

// One end of a connected, unbound Unix socket pair whose other end the
// dumped processes hold too (socketpair(), multiprocessing.Pipe()).
struct UnixSocket {
  std::int32_t fd = 0;     // the lowest descriptor of it in the process
  std::uint32_t ino = 0;   // its inode: which end, and its blob "sock.INO" (bytes queued for it to read)
  std::uint32_t peer = 0;  // the other end's inode
  std::uint8_t type = 0;   // SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET
  std::int32_t rcvbuf = 0, sndbuf = 0;  // SO_RCVBUF, SO_SNDBUF as getsockopt shows them
  bool passcred = false;                // SO_PASSCRED
  std::string peer_name;                // unix_external: the outside peer's bound name, connected to again
  SockExtras extras;
  bool operator==(const UnixSocket&) const = default;
};

// A listening Unix stream or seqpacket socket bound to a path or an
// abstract name ("@name"), with no connection waiting.
struct UnixListener {
  std::int32_t fd = 0;  // the lowest descriptor of it in the process
  std::uint64_t ino = 0;
  std::uint8_t type = 0;  // SOCK_STREAM or SOCK_SEQPACKET
  std::string name;       // the path, or "@" and the abstract name
  std::int32_t backlog = 0;
  std::uint32_t mode = 0, uid = 0, gid = 0;  // a path: its socket file's (mode 0: not recorded)
  std::int32_t rcvbuf = 0, sndbuf = 0;
  bool passcred = false;
  SockExtras extras;
  bool operator==(const UnixListener&) const = default;
};

// An established TCP connection as TCP_REPAIR reads and writes it.
struct TcpRepair {
  std::string lock;                        // the nftables table holding it (net_lock.h)
  std::uint32_t snd_seq = 0, rcv_seq = 0;  // TCP_QUEUE_SEQ: after the send queue, after the receive queue
  std::string sendq, recvq;                // the queued bytes
  std::uint32_t unsent = 0;                // the tail of sendq never sent (SIOCOUTQNSD)
  std::uint32_t mss = 0;                   // TCP_MAXSEG
  std::uint8_t options = 0;                // TCPI_OPT_TIMESTAMPS 1, _SACK 2, _WSCALE 4
  std::uint8_t snd_wscale = 0, rcv_wscale = 0;
  std::uint32_t timestamp = 0;                                                       // TCP_TIMESTAMP
  std::uint32_t snd_wl1 = 0, snd_wnd = 0, max_window = 0, rcv_wnd = 0, rcv_wup = 0;  // TCP_REPAIR_WINDOW
  // The receive side is shut: the peer closed its side (CLOSE_WAIT, its FIN
  // counted in rcv_seq), or a restore (or the process) shut it. The process
  // reads what is queued, then end-of-file, and may still send.
  bool read_shut = false;
  // The send side is shut (FIN_WAIT2: the process's FIN was sent and
  // acknowledged; snd_seq counts it). The restore queues it again as sent.
  bool write_shut = false;
  bool operator==(const TcpRepair&) const = default;
};

// A TCP socket listening with no connection waiting, a bound UDP socket
// with nothing queued, or (kInetConnected) an established TCP connection or
// a connected UDP socket.
struct InetSocket {
  std::int32_t fd = 0;  // the lowest descriptor of it in the process
  std::uint64_t ino = 0;
  std::uint8_t family = 0;    // AF_INET or AF_INET6
  std::uint8_t type = 0;      // SOCK_STREAM or SOCK_DGRAM
  std::uint8_t protocol = 0;  // IPPROTO_TCP or IPPROTO_UDP
  std::string addr;           // the bound address: struct sockaddr_in or sockaddr_in6 bytes
  std::int32_t backlog = -1;  // listening TCP: listen()'s backlog; else -1
  bool reuseaddr = false, reuseport = false, v6only = false, nodelay = false;
  std::int32_t rcvbuf = 0, sndbuf = 0;  // as getsockopt shows them
  // More options, each zero when at the kernel's default (and then not
  // written): SO_KEEPALIVE, with TCP_KEEPIDLE, _KEEPINTVL, _KEEPCNT (TCP,
  // recorded only with keepalive on); SO_LINGER; TCP_USER_TIMEOUT (ms);
  // TCP_CORK; SO_OOBINLINE; IP_TOS or IPV6_TCLASS; SO_PRIORITY; SO_MARK;
  // IP_FREEBIND; IP_TRANSPARENT; TCP_DEFER_ACCEPT (s), TCP_FASTOPEN (queue
  // length), TCP_NOTSENT_LOWAT (listening or not); TCP_CONGESTION when it
  // is not the network namespace's default.
  bool keepalive = false;
  std::int32_t keepidle = 0, keepintvl = 0, keepcnt = 0;
  bool linger = false;
  std::int32_t linger_s = 0;
  std::uint32_t user_timeout_ms = 0;
  bool cork = false, oobinline = false;
  std::int32_t tos = 0, priority = 0;
  std::uint32_t mark = 0;
  bool freebind = false, transparent = false;
  std::int32_t defer_accept_s = 0, fastopen_qlen = 0;
  std::uint32_t notsent_lowat = 0;
  std::string congestion;
  SockExtras extras;  // every other option, multicast groups, a classic filter
  std::string peer;   // connected: the peer's address (else empty)
  TcpRepair tcp;      // established TCP
  bool operator==(const InetSocket&) const = default;
};

struct ProcessModel {
  Core core;
  std::vector<ThreadState> threads;  // threads[0] is the thread-group leader
  std::vector<Vma> vmas;
  std::vector<FileRef> files;
  std::vector<Fd> fds;
  Signals signals;
  std::vector<PageRun> pagemap;
  std::string vdso;  // the dumping kernel's [vdso] bytes
  Creds creds;
  std::vector<EventFile> events;
  std::vector<FileLock> locks;
  std::vector<PosixTimer> posix_timers;
  std::vector<UnixSocket> sockets;
  std::vector<InetSocket> inet_sockets;
  std::vector<UnixListener> unix_listeners;
  std::vector<UnixSocket> unix_external;  // peer 0, peer_name set
};

// Encoding of each section payload (little-endian, see docs/image-format.md).
std::string EncodeCore(const Core& c);
std::string EncodeThread(const ThreadState& t);
std::string EncodeVmas(const std::vector<Vma>& v);
std::string EncodeFiles(const std::vector<FileRef>& f);
std::string EncodeFds(const std::vector<Fd>& f);
std::string EncodeSignals(const Signals& s);
std::string EncodePagemap(const std::vector<PageRun>& runs);
std::string EncodeCreds(const Creds& c);
std::string EncodeEvents(const std::vector<EventFile>& e);
std::string EncodeLocks(const std::vector<FileLock>& l);
std::string EncodePosixTimers(const std::vector<PosixTimer>& t);
std::string EncodeSockets(const std::vector<UnixSocket>& s);
std::string EncodeInetSockets(const std::vector<InetSocket>& s);
std::string EncodeUnixListeners(const std::vector<UnixListener>& v);
std::string EncodeUnixExternal(const std::vector<UnixSocket>& v);
// The connections of the connected sockets among `s`: "" if none.
std::string EncodeConnections(const std::vector<InetSocket>& s);

// Writes every metadata section of `m` (not the pagemap, pages or blobs),
// each named `prefix` + its name ("PID/" in a tree image, "" alone).
Status WriteModel(image::ImageWriter* w, const ProcessModel& m, const std::string& prefix = "");
// Reads every metadata section of the process whose sections carry
// `prefix`; checks versions and cross references. The pagemap comes after
// the pages: a streamed image's (image::ImageReader::OpenStreamed) is read
// with them if not found yet (m.pagemap stays empty).
Result<ProcessModel> ReadModel(const image::ImageReader& r, const std::string& prefix = "");
// The `pagemap` section's runs.
Result<std::vector<PageRun>> DecodePagemapSection(std::string_view in);

std::uint64_t PagemapPages(const std::vector<PageRun>& runs);
// Page-run sets: runs sorted by address, not overlapping. The union merges
// adjacent runs (flags dropped); intersection and difference keep the flag
// of the runs of `a` they cut.
std::vector<PageRun> RunsUnion(const std::vector<PageRun>& a, const std::vector<PageRun>& b);
std::vector<PageRun> RunsIntersect(const std::vector<PageRun>& a, const std::vector<PageRun>& b);
std::vector<PageRun> RunsSubtract(const std::vector<PageRun>& a, const std::vector<PageRun>& b);
const char* VmaKindName(VmaKind k);
// Lower-case hexadecimal without prefix, as /proc writes addresses.
std::string HexAddr(std::uint64_t v);
const char* FdKindName(FdKind k);
const char* EventKindName(EventKind k);  // "eventfd", "signalfd", "timerfd", "epoll"
// An InetSocket's address, "127.0.0.1:8000" or "[0:0:0:0:0:0:0:1]:8000"
// (read from the sockaddr bytes, on any platform).
std::string InetAddressText(const std::string& sockaddr_bytes);

}  // namespace ckpt::engine
