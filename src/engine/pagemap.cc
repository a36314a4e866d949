#include "engine/pagemap.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/guard.h"
#include "engine/inject.h"
#include "engine/mm.h"
#include "engine/proc.h"
#include "engine/util.h"
#include "image/checksum.h"
#include "image/format.h"
#include "platform/posix_util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr std::uint64_t kPage = kPageSize;
constexpr std::uint64_t kPresent = 1ull << 63;
constexpr std::uint64_t kSwapped = 1ull << 62;
constexpr std::uint64_t kFilePage = 1ull << 61;
constexpr std::uint64_t kExclusive = 1ull << 56;  // mapped by this process only
constexpr std::uint64_t kPfnMask = (1ull << 55) - 1;
// Bytes moved per process_vm_readv when dumping: small enough that the chunk
// is still in the CPU's cache when it is written to the image (8 MiB chunks
// made the page-cache write up to 4x slower and erratic on this VM).
constexpr std::size_t kDumpChunk = kImageFrameSize;
// The in-place copy: bytes per pwrite of the process's write loop (larger
// writes get large page-cache folios, slow to allocate on the test VM), and
// bytes per injection of the loop (the hashing thread follows batch by batch).
constexpr std::uint64_t kInPlaceWrite = 256u << 10;
constexpr std::uint64_t kInPlaceBatch = 8u << 20;
// Where the write loop's code and table go in the gadget area.
constexpr std::uint64_t kWriteLoopOffset = 64;
constexpr std::uint64_t kTableOffset = 4096;  // in the scratch area

// The PFN of the shared zero page (read faults of anonymous memory map it).
std::uint64_t ZeroPfn() {
  static const std::uint64_t pfn = []() -> std::uint64_t {
    void* p = ::mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return static_cast<std::uint64_t>(~0ull);
    volatile char c = *static_cast<volatile char*>(p);
    (void)c;
    std::uint64_t e = 0, out = ~static_cast<std::uint64_t>(0);
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 &&
        ::pread(fd, &e, 8, static_cast<off_t>(reinterpret_cast<std::uint64_t>(p) / kPage * 8)) == 8 &&
        (e & kPresent) != 0 && (e & kPfnMask) != 0) {
      out = e & kPfnMask;
    }
    if (fd >= 0) ::close(fd);
    ::munmap(p, kPage);
    return out;
  }();
  return pfn;
}

void AddRun(std::vector<PageRun>* runs, std::uint64_t addr, std::uint64_t pages, bool cow_shared = false) {
  if (!runs->empty() && runs->back().addr + runs->back().pages * kPage == addr &&
      runs->back().cow_shared == cow_shared) {
    runs->back().pages += pages;
  } else {
    runs->push_back({addr, pages, cow_shared});
  }
}

// PAGEMAP_SCAN (Linux 6.7): the kernel walks the page tables and returns
// ranges of pages by category, instead of 8 bytes per page to read and test.
// Debian 12's headers lack it: the ABI is spelled out here.
struct PmScanRegion {
  std::uint64_t start, end, categories;
};
struct PmScanArg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr std::uint64_t kPageIsFile = 1u << 2;
constexpr std::uint64_t kPageIsPresent = 1u << 3;
constexpr std::uint64_t kPageIsSwapped = 1u << 4;
constexpr std::uint64_t kPageIsPfnZero = 1u << 5;
constexpr std::uint64_t kPageIsWpAllowed = 1u << 0;
constexpr std::uint64_t kPageIsWritten = 1u << 1;

// A PAGEMAP_SCAN request for [start, end) into `vec`.
PmScanArg ScanArg(std::uint64_t start, std::uint64_t end, std::vector<PmScanRegion>* vec) {
  PmScanArg a{};
  a.size = sizeof a;
  a.start = start;
  a.end = end;
  a.vec = reinterpret_cast<std::uint64_t>(vec->data());
  a.vec_len = vec->size();
  return a;
}

// Adds the pages of [start, end) worth storing to `runs` with PAGEMAP_SCAN:
// present or swapped, not the zero page, and in a file mapping not still the
// file's page. False if this kernel has no PAGEMAP_SCAN.
Result<bool> ScanPopulated(int fd, const std::string& path, std::uint64_t start, std::uint64_t end,
                           bool file_backed, std::vector<PageRun>* runs) {
  static bool unsupported = false;  // this kernel has no PAGEMAP_SCAN (learnt once)
  if (unsupported) return false;
  std::vector<PmScanRegion> vec(512);
  const std::uint64_t excluded = kPageIsPfnZero | (file_backed ? kPageIsFile : 0);
  while (start < end) {
    PmScanArg a = ScanArg(start, end, &vec);
    a.category_inverted = excluded;
    a.category_mask = excluded;
    a.category_anyof_mask = kPageIsPresent | kPageIsSwapped;
    a.return_mask = kPageIsPresent | kPageIsSwapped;
    long n = ::ioctl(fd, kPagemapScan, &a);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOTTY || errno == EINVAL) {
        unsupported = true;
        return false;
      }
      return PosixError("PAGEMAP_SCAN", path, errno);
    }
    for (long i = 0; i < n; ++i) AddRun(runs, vec[i].start, (vec[i].end - vec[i].start) / kPage);
    if (a.walk_end <= start) return Internal("PAGEMAP_SCAN of " + path + " made no progress");
    start = a.walk_end;
  }
  return true;
}

}  // namespace

namespace {

constexpr std::uint64_t kScanWpMatching = 1u << 0;    // PM_SCAN_WP_MATCHING
constexpr std::uint64_t kScanCheckWpAsync = 1u << 1;  // PM_SCAN_CHECK_WPASYNC

// Pages of `within` with the given categories (CleanTrackedPages), or with
// `protect`: write-protects the written pages of `within`, in one walk of
// the page tables (much faster than UFFDIO_WRITEPROTECT page by page).
Result<std::vector<PageRun>> ScanTracked(pid_t pid, const std::vector<PageRun>& within, bool protect) {
  std::string path = ProcPath(pid, "pagemap");
  ScopedFd fd(::open(path.c_str(), protect ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return PosixError("open", path, errno);
  std::vector<PageRun> clean;
  std::vector<PmScanRegion> vec(512);
  for (std::size_t i = 0; i < within.size();) {
    // Adjacent runs (cut apart by their cow_shared flag) in one scan.
    std::uint64_t start = within[i].addr, end = start + within[i].pages * kPage;
    for (++i; i < within.size() && within[i].addr == end; ++i) end += within[i].pages * kPage;
    while (start < end) {
      PmScanArg a = ScanArg(start, end, &vec);
      if (protect) {
        a.flags = kScanWpMatching | kScanCheckWpAsync;
        a.category_mask = kPageIsWritten;
        a.return_mask = kPageIsWritten;
      } else {
        // Tracked (its mapping registered in async write-protect mode) and
        // not written: the write-protect bit is still set.
        a.category_inverted = kPageIsWritten;
        a.category_mask = kPageIsWpAllowed | kPageIsWritten;
        a.return_mask = kPageIsWpAllowed;
      }
      a.category_anyof_mask = kPageIsPresent | kPageIsSwapped;
      long n = ::ioctl(fd.get(), kPagemapScan, &a);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (!protect && (errno == ENOTTY || errno == EINVAL)) return std::vector<PageRun>{};
        return PosixError("PAGEMAP_SCAN", path, errno);
      }
      for (long k = 0; k < n; ++k) AddRun(&clean, vec[k].start, (vec[k].end - vec[k].start) / kPage);
      if (a.walk_end <= start) return Internal("PAGEMAP_SCAN of " + path + " made no progress");
      start = a.walk_end;
    }
  }
  return clean;
}

}  // namespace

Result<std::vector<PageRun>> CleanTrackedPages(pid_t pid, const std::vector<PageRun>& within) {
  return ScanTracked(pid, within, false);
}

Status WriteProtectPages(pid_t pid, const std::vector<PageRun>& runs) {
  return ScanTracked(pid, runs, true).status();
}

Result<std::vector<PageRun>> CollectPopulatedPages(pid_t pid, const std::vector<Vma>& vmas, bool range_scan) {
  std::string path = ProcPath(pid, "pagemap");
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return PosixError("open", path, errno);
  const std::uint64_t zero_pfn = ZeroPfn();
  std::vector<PageRun> runs;
  std::vector<std::uint64_t> ent;
  for (const auto& v : vmas) {
    if (!IsRestorableVma(v) || (v.flags & kVmaSharedObject) != 0) continue;  // stored with the object
    bool file_backed = v.kind == VmaKind::kFile;
    if (file_backed && (v.flags & kVmaShared) != 0) continue;  // the file holds the data
    if ((v.flags & kVmaAllPages) != 0) {
      AddRun(&runs, v.start, v.size() / kPage);
      continue;
    }
    // Where no page is shared with another process (smaps says so), the
    // kernel's range scan is enough; otherwise each page's entry tells
    // which ones are shared copy-on-write.
    if (range_scan && !v.shares_pages) {
      ASSIGN_OR_RETURN(bool scanned, ScanPopulated(fd.get(), path, v.start, v.end, file_backed, &runs));
      if (scanned) continue;
    }
    if (ent.empty()) ent.resize(64 * 1024);
    for (std::uint64_t a = v.start; a < v.end;) {
      std::uint64_t n = std::min<std::uint64_t>(ent.size(), (v.end - a) / kPage);
      ssize_t got = ::pread(fd.get(), ent.data(), n * 8, static_cast<off_t>(a / kPage * 8));
      if (got != static_cast<ssize_t>(n * 8)) return PosixError("read", path, got < 0 ? errno : EIO);
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint64_t e = ent[i];
        bool keep;
        if ((e & kSwapped) != 0) {
          keep = true;
        } else if ((e & kPresent) == 0) {
          keep = false;
        } else if (file_backed && (e & kFilePage) != 0) {
          keep = false;  // still the file's page
        } else {
          keep = (e & kPfnMask) != zero_pfn || (e & kPfnMask) == 0;
        }
        // An anonymous page another process maps too (copy-on-write after
        // fork): process_vm_readv would pin it, and pinning makes the
        // kernel give the process its own copy of the page.
        bool shared = keep && (e & kPresent) != 0 && (e & kExclusive) == 0 && (e & kFilePage) == 0;
        if (keep) AddRun(&runs, a + i * kPage, 1, shared);
      }
      a += n * kPage;
    }
  }
  return runs;
}

namespace {

struct Chunk {
  std::vector<struct iovec> remote;
  std::vector<bool> cow_shared;  // per iovec: read through /proc/PID/mem
  bool any_shared = false;
  std::size_t bytes = 0;
};

// Cuts the pagemap into chunks of at most `limit` bytes.
std::vector<Chunk> Chunks(const std::vector<PageRun>& runs, std::size_t limit) {
  std::vector<Chunk> out;
  std::size_t ri = 0;
  std::uint64_t roff = 0;
  while (ri < runs.size()) {
    Chunk c;
    while (ri < runs.size() && c.bytes < limit && c.remote.size() < 1024) {
      const PageRun& r = runs[ri];
      std::uint64_t pages = std::min<std::uint64_t>(r.pages - roff, (limit - c.bytes) / kPage);
      c.remote.push_back({reinterpret_cast<void*>(r.addr + roff * kPage), pages * kPage});
      c.cow_shared.push_back(r.cow_shared);
      c.any_shared = c.any_shared || r.cow_shared;
      c.bytes += pages * kPage;
      roff += pages;
      if (roff == r.pages) {
        ++ri;
        roff = 0;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

// A chunk read from the process: which byte ranges of its buffer to write
// (all-zero pages dropped) and where they lie in the process.
struct ReadChunk {
  std::vector<std::pair<std::size_t, std::size_t>> pieces;  // (offset in buffer, bytes)
  std::vector<std::uint64_t> sums;                          // each piece's frame checksum
  std::vector<PageRun> runs;
  std::uint64_t zero_pages = 0;
  std::string record;  // the page record that comes before the pieces
  std::uint64_t record_sum = 0;
};

// Reads the copy-on-write-shared pieces of chunk `c` through /proc/PID/mem
// (`mem_fd`), which does not pin pages, and the rest with process_vm_readv.
Status ReadSharedChunk(pid_t pid, int mem_fd, const Chunk& c, unsigned char* buf) {
  std::size_t off = 0;
  for (std::size_t i = 0; i < c.remote.size(); ++i) {
    const auto& r = c.remote[i];
    std::uint64_t addr = reinterpret_cast<std::uint64_t>(r.iov_base);
    bool done = false;
    if (c.cow_shared[i] && mem_fd >= 0) {
      done =
          ::pread(mem_fd, buf + off, r.iov_len, static_cast<off_t>(addr)) == static_cast<ssize_t>(r.iov_len);
    }
    if (!done) RETURN_IF_ERROR(ReadMemory(pid, addr, buf + off, r.iov_len).WithContext("dumping memory"));
    off += r.iov_len;
  }
  return Status::Ok();
}

// Reads chunk `c` of the process into `buf`. `running`: the process runs
// meanwhile (a pre-copy round): a piece it has unmapped since reads as
// zeros (dropped as all-zero pages; its pages, if mapped again, are
// untracked and stored by the next round).
Status ReadChunkRaw(pid_t pid, int mem_fd, const Chunk& c, unsigned char* buf, bool running) {
  struct iovec local = {buf, c.bytes};
  if (c.any_shared) {
    Status st = ReadSharedChunk(pid, mem_fd, c, buf);
    if (!st.ok() && !running) return st;
    if (!st.ok()) std::memset(buf, 0, c.bytes);
  } else if (::process_vm_readv(pid, &local, 1, c.remote.data(), c.remote.size(), 0) !=
             static_cast<ssize_t>(c.bytes)) {
    // Partly unreadable (PROT_NONE pages): read piece by piece with the fallback.
    std::size_t off = 0;
    for (const auto& r : c.remote) {
      Status st = ReadMemory(pid, reinterpret_cast<std::uint64_t>(r.iov_base), buf + off, r.iov_len);
      if (!st.ok() && !running) return st.WithContext("dumping memory");
      if (!st.ok()) std::memset(buf + off, 0, r.iov_len);
      off += r.iov_len;
    }
  }
  return Status::Ok();
}

// Sorts out the zero pages of chunk `c`, read into `buf`, and hashes the
// rest: what the writer thread needs.
void AnalyzeChunk(const Chunk& c, const unsigned char* buf, ReadChunk* out) {
  std::size_t off = 0;
  for (const auto& r : c.remote) {
    std::uint64_t base = reinterpret_cast<std::uint64_t>(r.iov_base);
    for (std::size_t p = 0; p < r.iov_len; p += kPage) {
      if (IsZeroPage(buf + off + p)) {
        ++out->zero_pages;
        continue;
      }
      if (!out->pieces.empty() && out->pieces.back().first + out->pieces.back().second == off + p) {
        out->pieces.back().second += kPage;
      } else {
        out->pieces.push_back({off + p, kPage});
      }
      AddRun(&out->runs, base + p, 1);
    }
    off += r.iov_len;
  }
  // Hashing here, while the chunk is still in this core's cache, leaves the
  // writer thread only the write itself.
  for (const auto& [o, len] : out->pieces) out->sums.push_back(image::Checksum64(buf + o, len));
  if (!out->runs.empty()) {
    out->record = EncodePageRecord(out->runs);
    out->record_sum = image::Checksum64(out->record.data(), out->record.size());
  }
}

}  // namespace

PageBuffers::~PageBuffers() {
  if (area_ != nullptr) ::munmap(area_, size_);
}

void PageBuffers::ReserveFor(pid_t pid, bool early) {
  std::size_t want = 4 * kDumpChunk;
  if (early) {
    // RssAnon, in kB; the file pages a process changed (a library's data)
    // come on top: a chunk of slack.
    auto anon = StatusField(pid, "RssAnon");
    if (!anon.ok() || anon->empty()) return;
    std::uint64_t bytes = std::strtoull(anon->c_str(), nullptr, 10) * 1024 + kDumpChunk;
    if (bytes > kEarlyReleaseMax) bytes = kEarlyReleaseMax;
    want = static_cast<std::size_t>((bytes + kDumpChunk - 1) / kDumpChunk * kDumpChunk);
  }
  void* p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return;
  area_ = p;
  size_ = want;
  // Populated is not enough on a VM with shadow page tables (this one, the
  // PVM hypervisor): the kernel's first write to each page of a new
  // process still exits to the hypervisor, and so does its first read of
  // each page of the dumped process — process_vm_readv of 4 MiB took ~7 ms
  // the first time in a process, ~0.5 ms after. Both are paid now, while
  // the process runs: the kernel writes the buffers once (from /dev/zero),
  // and, for a small process, reads its pages into them.
  ScopedFd zero(::open("/dev/zero", O_RDONLY | O_CLOEXEC));
  for (std::size_t off = 0; zero.get() >= 0 && off < want;) {
    ssize_t n = ::read(zero.get(), static_cast<unsigned char*>(p) + off, want - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  if (early) WarmSource(pid);
}

// Reads the process's populated private pages into the buffers once:
// through /proc/PID/mem, which never makes the process copy a page it
// shares copy-on-write (process_vm_readv would), and only where pagemap
// shows a page, so that nothing is faulted in.
void PageBuffers::WarmSource(pid_t pid) const {
  auto maps = ReadMaps(pid, false);
  if (!maps.ok()) return;
  ScopedFd mem(::open(ProcPath(pid, "mem").c_str(), O_RDONLY | O_CLOEXEC));
  ScopedFd pm(::open(ProcPath(pid, "pagemap").c_str(), O_RDONLY | O_CLOEXEC));
  if (mem.get() < 0 || pm.get() < 0) return;
  auto* buf = static_cast<unsigned char*>(area_);
  std::size_t budget = size_;
  std::vector<std::uint64_t> ent(256);
  for (const MapsEntry& e : *maps) {
    if (e.shared || (e.prot & PROT_WRITE) == 0 || (e.prot & PROT_READ) == 0) continue;
    for (std::uint64_t a = e.start; a < e.end && budget > 0;) {
      std::uint64_t n = std::min<std::uint64_t>(ent.size(), (e.end - a) / kPage);
      if (::pread(pm.get(), ent.data(), n * 8, static_cast<off_t>(a / kPage * 8)) !=
          static_cast<ssize_t>(n * 8))
        return;
      for (std::uint64_t i = 0; i < n && budget > 0;) {
        std::uint64_t j = i;
        while (j < n && (ent[j] & kPresent) != 0) ++j;
        std::size_t len = std::min<std::size_t>((j - i) * kPage, budget);
        if (len > 0 && ::pread(mem.get(), buf + (size_ - budget), len, static_cast<off_t>(a + i * kPage)) < 0)
          return;
        budget -= len;
        i = j == i ? i + 1 : j;
      }
      a += n * kPage;
    }
  }
}

Result<PageDumpResult> WritePages(pid_t pid, const std::vector<PageRun>& candidates, image::ImageWriter* w,
                                  const std::string& prefix, const Progress& progress,
                                  const PageWriteOptions& po) {
  // The dumping thread reads chunk k+1 from the process while a writer
  // thread appends chunk k to the image; with po.all_read and few pages,
  // every chunk has a slot: all are read, then the writer catches up.
  std::vector<Chunk> chunks = Chunks(candidates, kDumpChunk);
  const bool early = po.all_read && PagemapPages(candidates) * kPage <= kEarlyReleaseMax;
  const std::size_t kSlots = early ? std::max<std::size_t>(1, chunks.size()) : 4;
  ScopedFd mem_fd;
  if (std::any_of(chunks.begin(), chunks.end(), [](const Chunk& c) { return c.any_shared; })) {
    mem_fd.reset(::open(ProcPath(pid, "mem").c_str(), O_RDONLY | O_CLOEXEC));  // -1: ReadMemory's fallback
  }
  // The slots: those populated before the freeze (PageBuffers) if there
  // are enough, else faulted in by the kernel at once (MAP_POPULATE):
  // first touches one page at a time cost a hypervisor exit each on a VM,
  // paid while the process is frozen. A small process needs fewer slots.
  std::size_t slots = std::max<std::size_t>(1, std::min(kSlots, chunks.size()));
  void* area = po.buffers != nullptr ? po.buffers->Get(slots * kDumpChunk) : nullptr;
  const bool own = area == nullptr;
  if (own) {
    area = ::mmap(nullptr, slots * kDumpChunk, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (area == MAP_FAILED) return PosixError("mmap", "the dump's page buffers", errno);
  }
  struct Unmap {
    void* p;
    std::size_t n;
    ~Unmap() {
      if (n != 0) ::munmap(p, n);
    }
  } unmap{area, own ? slots * kDumpChunk : 0};
  std::vector<unsigned char*> bufs(kSlots);
  for (std::size_t i = 0; i < kSlots; ++i)
    bufs[i] = static_cast<unsigned char*>(area) + (i % slots) * kDumpChunk;
  std::vector<ReadChunk> ready(chunks.size());
  std::mutex mu;
  std::condition_variable cv;
  std::size_t read = 0, written = 0;
  bool stop = false;
  Status write_status;
  RETURN_IF_ERROR(w->BeginSection(po.section_type, prefix + "pages", ""));
  std::thread writer([&] {
    for (std::size_t k = 0; k < chunks.size(); ++k) {
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return stop || read > k; });
        if (stop) return;
      }
      Status st;
      if (!ready[k].record.empty()) {
        st = w->WriteFrameWithChecksum(ready[k].record.data(), ready[k].record.size(), ready[k].record_sum);
      }
      for (std::size_t i = 0; st.ok() && i < ready[k].pieces.size(); ++i) {
        const auto& [off, len] = ready[k].pieces[i];
        st = w->WriteFrameWithChecksum(bufs[k % kSlots] + off, len, ready[k].sums[i]);
        if (!st.ok()) break;
      }
      std::lock_guard<std::mutex> l(mu);
      if (!st.ok()) {
        write_status = st;
        stop = true;
      } else {
        written = k + 1;
      }
      cv.notify_all();
      if (!st.ok()) return;
    }
  });
  Status st;
  std::uint64_t total = PagemapPages(candidates) * kPage, done = 0;
  // Makes chunk k (read into its slot) the writer's.
  auto hand_over = [&](std::size_t k) {
    AnalyzeChunk(chunks[k], bufs[k % kSlots], &ready[k]);
    std::lock_guard<std::mutex> l(mu);
    read = k + 1;
    cv.notify_all();
  };
  for (std::size_t k = 0; k < chunks.size() && st.ok(); ++k) {
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return stop || k < written + kSlots; });
      if (stop) break;
    }
    st = CheckInterrupted();
    if (st.ok()) st = ReadChunkRaw(pid, mem_fd.get(), chunks[k], bufs[k % kSlots], po.running);
    if (!st.ok()) {
      std::lock_guard<std::mutex> l(mu);
      stop = true;
      cv.notify_all();
      break;
    }
    // Early release: every chunk is only copied while the processes are
    // frozen; sorting and hashing wait until they run again.
    if (!early) hand_over(k);
    done += chunks[k].bytes;
    if (progress) progress(done, total);
  }
  PageDumpResult res;
  if (st.ok() && early) {
    // Every page is in the buffers: the caller may let the processes go.
    st = po.all_read();
    res.all_read_called = true;
    if (st.ok()) {
      for (std::size_t k = 0; k < chunks.size(); ++k) hand_over(k);
    } else {
      std::lock_guard<std::mutex> l(mu);
      stop = true;
      cv.notify_all();
    }
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return stop || written == chunks.size(); });
    stop = true;
    cv.notify_all();
  }
  writer.join();
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(write_status);
  for (const auto& rc : ready) {
    res.zero_pages += rc.zero_pages;
    for (const auto& r : rc.runs) AddRun(&res.runs, r.addr, r.pages);
  }
  RETURN_IF_ERROR(w->EndSection());
  return res;
}

namespace {

// The memory cgroup path of `pid` ("" if none is found): the v1 memory
// controller's line, else the v2 line.
std::string MemoryCgroup(const std::string& cgroup_file) {
  std::string v2;
  std::size_t b = 0;
  while (b < cgroup_file.size()) {
    std::size_t e = cgroup_file.find('\n', b);
    if (e == std::string::npos) e = cgroup_file.size();
    std::string line = cgroup_file.substr(b, e - b);
    b = e + 1;
    std::size_t c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    std::string ctrl = line.substr(c1 + 1, c2 - c1 - 1);
    if (ctrl.find("memory") != std::string::npos) return "v1:" + line.substr(c2 + 1);
    if (ctrl.empty()) v2 = "v2:" + line.substr(c2 + 1);
  }
  return v2;
}

// Whether the process may write its own pages into the image: its limit on
// file sizes allows it (RLIMIT_FSIZE would send it SIGXFSZ), and the page
// cache it fills is charged to ckpt's memory cgroup or to one without a
// limit (in a limited cgroup, 1 GiB of dirty cache could push it into
// reclaim). Otherwise `why` says why not.
bool CanWriteOwnPages(pid_t pid, std::string* why) {
  auto limits = ReadProcFile(pid, "limits");
  std::size_t p = limits.ok() ? limits->find("Max file size") : std::string::npos;
  std::size_t e = p == std::string::npos ? p : limits->find('\n', p);
  if (p == std::string::npos || limits->substr(p, e - p).find("unlimited") == std::string::npos) {
    *why = "the process has a file size limit";
    return false;
  }
  auto theirs = ReadProcFile(pid, "cgroup");
  auto ours = ReadProcFile(::getpid(), "cgroup");
  if (!theirs.ok() || !ours.ok()) {
    *why = "cannot read the process's cgroup";
    return false;
  }
  std::string cg = MemoryCgroup(*theirs);
  if (cg == MemoryCgroup(*ours)) return true;
  std::string limit_path = cg.compare(0, 3, "v1:") == 0
                               ? "/sys/fs/cgroup/memory" + cg.substr(3) + "/memory.limit_in_bytes"
                               : "/sys/fs/cgroup" + cg.substr(3) + "/memory.max";
  std::string limit;
  int fd = cg.empty() ? -1 : ::open(limit_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    if (n > 0) limit.assign(buf, static_cast<std::size_t>(n));
    ::close(fd);
  }
  bool unlimited = limit.compare(0, 3, "max") == 0 ||
                   (!limit.empty() && std::strtoull(limit.c_str(), nullptr, 10) >= (1ull << 62));
  if (!unlimited) *why = "the process's memory cgroup has a limit";
  return unlimited;
}

// pwrite or pread of all `n` bytes at `off`, resuming after short transfers.
Status FullIo(bool write, int fd, void* p, std::size_t n, std::uint64_t off) {
  auto* c = static_cast<unsigned char*>(p);
  while (n > 0) {
    ssize_t done =
        write ? ::pwrite(fd, c, n, static_cast<off_t>(off)) : ::pread(fd, c, n, static_cast<off_t>(off));
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return PosixError(write ? "write" : "read back", "the image", done < 0 ? errno : EIO);
    c += done;
    n -= static_cast<std::size_t>(done);
    off += static_cast<std::uint64_t>(done);
  }
  return Status::Ok();
}

Status PwriteAll(int fd, const void* p, std::size_t n, std::uint64_t off) {
  return FullIo(true, fd, const_cast<void*>(p), n, off);
}

Status PreadAll(int fd, void* p, std::size_t n, std::uint64_t off) {
  return FullIo(false, fd, p, n, off);
}

}  // namespace

Result<PageDumpResult> WritePagesInPlace(pid_t pid, Injector* inj, const std::vector<PageRun>& candidates,
                                         image::ImageWriter* w, platform::WritableFile* file,
                                         const std::string& prefix, const Progress& progress) {
  std::string why;
  if (!CanWriteOwnPages(pid, &why)) return NotSupported(why);
  // One frame per MiB of pages, as in WritePages.
  std::vector<Chunk> frames = Chunks(candidates, kImageFrameSize);
  // The process opens the image through ckpt's descriptor.
  ASSIGN_OR_RETURN(std::intptr_t fd_handle, file->FlushForDirectWrites());
  int fd = static_cast<int>(fd_handle);
  std::string path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd);
  ASSIGN_OR_RETURN(std::uint64_t path_at, inj->PutScratch(0, path.c_str(), path.size() + 1));
  ASSIGN_OR_RETURN(long tfd, inj->Raw(SYS_openat, {static_cast<std::uint64_t>(AT_FDCWD), path_at,
                                                   O_WRONLY | O_CLOEXEC, 0}));
  if (tfd < 0)
    return NotSupported("the process cannot open the image (" +
                        std::string(strerror(static_cast<int>(-tfd))) + ")");
  NoteImageFd(pid, static_cast<int>(tfd));
  auto close_tfd = [&]() {
    if (inj->Raw(SYS_close, {static_cast<std::uint64_t>(tfd)}).ok()) NoteImageFd(pid, -1);
  };
  // The write loop goes into the gadget page, after the syscall gadget.
  auto [code, code_size] = arch::WriteLoopCode();
  const std::uint64_t loop_at = inj->gadget() + kWriteLoopOffset;
  Status put = WriteMemory(pid, loop_at, code, code_size);
  // The hashing thread reads frames back through a read-only descriptor.
  ScopedFd rfd(put.ok() ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC) : -1);
  if (rfd.get() < 0) {
    int e = errno;
    close_tfd();
    if (!put.ok()) return put;
    return PosixError("reopen", "the image for reading", e);
  }

  Status begun = w->BeginSection(kSecPages, prefix + "pages", "");
  Result<std::uint64_t> base = begun.ok() ? w->BeginDirectFrames() : Result<std::uint64_t>(begun);
  if (!base.ok()) {
    close_tfd();
    return base.status();
  }
  // Frame k: a 16-byte header the hashing thread makes, then the frame's
  // bytes, which the process writes.
  std::vector<std::uint64_t> at(frames.size());
  std::uint64_t pos = *base, raw_total = 0;
  for (std::size_t k = 0; k < frames.size(); ++k) {
    at[k] = pos;
    pos += image::kFrameHeaderSize + frames[k].bytes;
    raw_total += frames[k].bytes;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::size_t written = 0;  // frames in the file
  bool stop = false;
  Status hash_status;
  std::vector<unsigned char> headers(frames.size() * image::kFrameHeaderSize);
  std::thread hasher([&] {
    // Read back from the page cache into one buffer that stays in this
    // core's cache. (Mapping the file instead costs a page fault per page,
    // far more than the copy on virtual machines with shadow page tables.)
    std::unique_ptr<unsigned char[]> buf(new unsigned char[kImageFrameSize]);
    for (std::size_t k = 0; k < frames.size(); ++k) {
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return stop || written > k; });
        if (stop && written <= k) return;
      }
      std::size_t n = frames[k].bytes;
      Status st = PreadAll(rfd.get(), buf.get(), n, at[k] + image::kFrameHeaderSize);
      if (!st.ok()) {
        std::lock_guard<std::mutex> l(mu);
        hash_status = st;
        stop = true;
        cv.notify_all();
        return;
      }
      // Headers are written once the process has finished writing: a pwrite
      // of ours now would wait on the file's lock behind its writes.
      image::EncodeFrameHeader(headers.data() + k * image::kFrameHeaderSize, static_cast<std::uint32_t>(n),
                               static_cast<std::uint32_t>(n) | image::kFrameStoredRaw,
                               image::Checksum64(buf.get(), n));
    }
  });
  auto finish_hasher = [&](bool abort) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (abort) stop = true;
      cv.notify_all();
    }
    hasher.join();
  };

  // Write entries: every piece of a frame, cut where the file offset
  // crosses a multiple of kInPlaceWrite (large writes get large page-cache
  // folios, which were slow to allocate on the test VM).
  struct Entry {
    std::uint64_t addr, len, off;
  };
  static_assert(sizeof(Entry) == 24, "the write loop's table layout");
  auto entries_of = [&](std::size_t k, std::vector<Entry>* out) {
    std::uint64_t off = at[k] + image::kFrameHeaderSize;
    for (const auto& r : frames[k].remote) {
      std::uint64_t addr = reinterpret_cast<std::uint64_t>(r.iov_base), left = r.iov_len;
      while (left > 0) {
        std::uint64_t n = std::min<std::uint64_t>(left, (off / kInPlaceWrite + 1) * kInPlaceWrite - off);
        out->push_back({addr, n, off});
        addr += n;
        off += n;
        left -= n;
      }
    }
  };
  const std::size_t table_capacity = (kGadgetAreaSize - kScratchOffset - kTableOffset) / sizeof(Entry);

  Status st;
  std::unique_ptr<unsigned char[]> fallback;
  std::vector<Entry> table;
  std::uint64_t done_bytes = 0;
  for (std::size_t k = 0; k < frames.size() && st.ok();) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (stop) break;
    }
    st = CheckInterrupted();
    if (!st.ok()) break;
    // A batch: whole frames, up to kInPlaceBatch bytes and what the table holds.
    table.clear();
    std::size_t end = k;
    std::uint64_t batch_bytes = 0;
    while (end < frames.size() && batch_bytes < kInPlaceBatch) {
      std::size_t before = table.size();
      entries_of(end, &table);
      if (table.size() > table_capacity && end > k) {
        table.resize(before);
        break;
      }
      batch_bytes += frames[end].bytes;
      ++end;
    }
    if (table.size() > table_capacity) {
      st = Internal("a frame needs more write entries than the gadget area holds");
      break;
    }
    for (std::size_t i = 0; i < table.size() && st.ok();) {
      std::size_t count = table.size() - i;
      auto table_at = inj->PutScratch(kTableOffset, table.data() + i, count * sizeof(Entry));
      if (!table_at.ok()) {
        st = table_at.status();
        break;
      }
      arch::Regs r = inj->saved();
      arch::SetWriteLoop(&r, loop_at, *table_at, count, static_cast<int>(tfd));
      auto out = inj->RunToTrap(r, "the page write loop");
      if (!out.ok()) {
        st = out.status();
        break;
      }
      arch::WriteLoopStop stop_at = arch::WriteLoopProgress(*out, count);
      i += stop_at.done;
      if (!stop_at.failed) break;
      // Pages the process cannot read itself (PROT_NONE) or a short write:
      // ckpt copies this entry (and reports a real write error, such as a
      // full disk, itself).
      const Entry& e = table[i];
      if (!fallback) fallback.reset(new unsigned char[kImageFrameSize]);
      st = ReadMemory(pid, e.addr, fallback.get(), e.len).WithContext("dumping memory");
      if (st.ok()) st = PwriteAll(fd, fallback.get(), e.len, e.off);
      ++i;
    }
    if (!st.ok()) break;
    for (; k < end; ++k) done_bytes += frames[k].bytes;
    {
      std::lock_guard<std::mutex> l(mu);
      written = end;
      cv.notify_all();
    }
    if (progress) progress(done_bytes, raw_total);
  }
  close_tfd();
  finish_hasher(!st.ok());
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(hash_status);
  for (std::size_t k = 0; k < frames.size(); ++k) {
    RETURN_IF_ERROR(
        PwriteAll(fd, headers.data() + k * image::kFrameHeaderSize, image::kFrameHeaderSize, at[k]));
  }
  std::uint64_t stored = pos - *base;
  RETURN_IF_ERROR(file->SkipDirectlyWritten(stored));
  RETURN_IF_ERROR(w->EndDirectFrames(frames.size(), raw_total, stored));
  RETURN_IF_ERROR(w->EndSection());
  PageDumpResult res;
  for (const auto& r : candidates) AddRun(&res.runs, r.addr, r.pages);
  return res;
}

}  // namespace ckpt::engine
