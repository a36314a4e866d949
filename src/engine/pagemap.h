// Memory contents. At dump, /proc/PID/pagemap (its PAGEMAP_SCAN ioctl where
// the kernel has it) says which pages are populated: only those are read
// (process_vm_readv) and stored, pages that
// still equal their file or are all zeros are skipped. At restore the pages
// are populated in bulk (MADV_POPULATE_WRITE) and written with
// process_vm_writev. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/inject.h"
#include "engine/model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "platform/env.h"
#include "util/status.h"

namespace ckpt::engine {

// Frame size of process images: the page dump writes one frame per chunk it
// reads from the process, straight from its buffer.
inline constexpr std::uint32_t kImageFrameSize = 1u << 20;
// The most runs one page record lists (the dump writes at most 128 per MiB).
inline constexpr std::uint32_t kMaxRecordRuns = 1024;

struct PageDumpResult {
  std::vector<PageRun> runs;
  std::uint64_t zero_pages = 0;
  bool all_read_called = false;  // PageWriteOptions::all_read was called
};

// Up to this many bytes of pages, WritePages can read them all into memory
// before writing them (PageWriteOptions::all_read).
inline constexpr std::uint64_t kEarlyReleaseMax = 16u << 20;

// Page buffers mapped and faulted in ahead, before the processes are
// frozen, for WritePages to read into instead of mapping its own while
// they are (on a VM each first touch of a page costs a hypervisor exit).
// Best effort: WritePages maps its own if these are too few.
class PageBuffers {
 public:
  PageBuffers() = default;
  ~PageBuffers();
  PageBuffers(const PageBuffers&) = delete;
  PageBuffers& operator=(const PageBuffers&) = delete;
  // What a dump of process `pid` will want (its anonymous memory as
  // /proc/PID/status counts it, up to kEarlyReleaseMax, with `early`: the
  // pages may all be read before they are written; else WritePages' four
  // chunks), mapped and populated now.
  void ReserveFor(pid_t pid, bool early);
  // At least `bytes` of them, or null.
  unsigned char* Get(std::size_t bytes) const {
    return bytes <= size_ ? static_cast<unsigned char*>(area_) : nullptr;
  }

 private:
  void WarmSource(pid_t pid) const;
  void* area_ = nullptr;
  std::size_t size_ = 0;
};

struct PageWriteOptions {
  // kSecPageRecords, or kSecDeltaPages in an incremental image.
  std::uint32_t section_type = kSecPageRecords;
  // The process runs meanwhile (a pre-copy round, whose dirty tracking
  // catches every page written since it was armed): pieces it has unmapped
  // since are not an error.
  bool running = false;
  // If the pages fit in kEarlyReleaseMax: called once every page is read
  // into memory, before they are written (the caller lets a --leave-running
  // process go: the image write is not frozen time). Its error fails.
  std::function<Status()> all_read;
  // The process writes its own pages into the image file where it can
  // (DumpOptions::in_place_copy).
  bool in_place = false;
  // Buffers populated before the freeze, if any.
  const PageBuffers* buffers = nullptr;
};

// Candidate pages (populated, not equal to their file) of every VMA. With
// `range_scan` false, every page's pagemap entry is read even where the
// kernel has PAGEMAP_SCAN (DumpOptions::pagemap_scan).
Result<std::vector<PageRun>> CollectPopulatedPages(pid_t pid, const std::vector<Vma>& vmas,
                                                   bool range_scan = true);
// Reads the candidates from the process and writes the kSecPageRecords
// section: per chunk read, a record of its non-zero runs, then their pages.
// `progress` reports bytes read.
Result<PageDumpResult> WritePages(pid_t pid, const std::vector<PageRun>& candidates, image::ImageWriter* w,
                                  const std::string& prefix, const Progress& progress,
                                  const PageWriteOptions& po = {});
// The pages among `within` that are populated and still write-protected by
// a dirty tracker (incremental.h): not written since it was armed. Empty
// where the kernel has no PAGEMAP_SCAN.
Result<std::vector<PageRun>> CleanTrackedPages(pid_t pid, const std::vector<PageRun>& within);
// Write-protects the populated pages of `runs` (mappings registered with a
// dirty tracker) in one PAGEMAP_SCAN walk.
Status WriteProtectPages(pid_t pid, const std::vector<PageRun>& runs);
// Like WritePages, with one copy instead of two: the stopped process itself
// writes its pages into the image file (a loop of pwrite64 calls run through
// `inj`, a traced thread of it with a gadget), while a second thread reads
// each frame back from the page cache, hashes it and makes its header. All-zero pages are
// stored (counted in zero_pages). NotSupported, with nothing written, when
// the process cannot do it (its file-size limit, no way to open the image):
// then call WritePages.
Result<PageDumpResult> WritePagesInPlace(pid_t pid, Injector* inj, const std::vector<PageRun>& candidates,
                                         image::ImageWriter* w, platform::WritableFile* file,
                                         const std::string& prefix, const Progress& progress);
// A page record (docs/image-format.md): u32 count, then count runs of
// (addr u64, pages u64).
std::string EncodePageRecord(const std::vector<PageRun>& runs);

// Populates and fills the pages of member `prefix` into process `pid`, from
// its kSecPages section (cut by m.pagemap) or its kSecPageRecords section
// (the runs come with the pages; m.pagemap, or the pagemap section that
// follows, must agree). In a streamed image the section is waited for and
// read as it arrives. `*pages` gets the number of pages restored.
Status RestorePages(const ProcessModel& m, image::ImageReader* r, const std::string& prefix, pid_t pid,
                    Injector* inj, const Progress& progress, std::uint64_t* pages);
// Like RestorePages, from another image of the chain (incremental.h): only
// the pages of `wanted` (runs checked by the caller) are filled in.
Status RestorePageSubset(image::ImageReader* r, const std::string& prefix, const std::vector<PageRun>& wanted,
                         pid_t pid, Injector* inj, std::uint64_t* pages);
// Checks `runs` (page-aligned, in order, inside restorable mappings of `vmas`).
Status CheckRuns(const std::vector<Vma>& vmas, const std::vector<PageRun>& runs, const std::string& where);
// The pages section (any type) of member `prefix`, or of any member
// without one, or nullptr; in a streamed image, reads on until it appears.
Result<const image::SectionInfo*> SeekPages(image::ImageReader* r, const std::optional<std::string>& prefix);

}  // namespace ckpt::engine
