// Restoring memory contents: the pages of a member come in batches, either
// cut from a plain `pages` section by the pagemap read before, or from the
// page records of a `pages` record section as they arrive (a migration's
// image is restored while it is still being received). Three stages run at
// once on each batch: a reader thread takes it from the image, the tracing
// thread (the only one allowed to inject) populates its memory in the
// process, and a writer thread copies the data in with process_vm_writev.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/inject.h"
#include "engine/mm.h"
#include "engine/pagemap.h"
#include "util/bytes.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace ckpt::engine {

namespace {

constexpr std::uint64_t kPage = kPageSize;
// Bytes per process_vm_writev when restoring (each batch costs an injected
// madvise, so larger than the dump's chunks).
constexpr std::size_t kIoChunk = 8u << 20;
// process_vm_writev takes at most this many remote pieces (UIO_MAXIOV).
constexpr std::size_t kMaxIov = 1024;

struct Batch {
  std::vector<struct iovec> remote;
  std::size_t bytes = 0;
};

// Checks runs as they come: page-aligned, in address order, each inside
// mappings the restore creates (adjacent ones may share a run); collects
// them, adjacent runs merged as the dump merges them.
class RunChecker {
 public:
  RunChecker(const std::vector<Vma>& vmas, std::string where) : vmas_(vmas), where_(std::move(where)) {}
  Status Add(const PageRun& run) {
    if ((run.addr & (kPage - 1)) != 0 || run.pages == 0 || run.pages > (1ull << 36) || run.addr < end_ ||
        run.addr + run.pages * kPage < run.addr) {
      return Corruption(where_ + ": a page run is misaligned, empty or out of order");
    }
    std::uint64_t end = run.addr + run.pages * kPage;
    while (vi_ < vmas_.size() && vmas_[vi_].end <= run.addr) ++vi_;
    std::uint64_t covered = run.addr;
    for (std::size_t j = vi_; j < vmas_.size() && covered < end; ++j) {
      if (vmas_[j].start > covered || !IsRestorableVma(vmas_[j])) break;
      covered = vmas_[j].end;
    }
    if (covered < end) return Corruption(where_ + ": pagemap run outside the memory map");
    if (!runs_.empty() && runs_.back().addr + runs_.back().pages * kPage == run.addr) {
      runs_.back().pages += run.pages;
    } else {
      runs_.push_back({run.addr, run.pages});
    }
    end_ = end;
    return Status::Ok();
  }
  const std::vector<PageRun>& runs() const { return runs_; }

 private:
  const std::vector<Vma>& vmas_;
  std::string where_;
  std::size_t vi_ = 0;
  std::uint64_t end_ = 0;
  std::vector<PageRun> runs_;
};

void AddIov(Batch* b, std::uint64_t addr, std::uint64_t len) {
  b->remote.push_back({reinterpret_cast<void*>(addr), len});
  b->bytes += len;
}

// Where a member's batches come from.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next batch into `b` and `buf` (kIoChunk bytes); false at the end.
  virtual Result<bool> Next(Batch* b, unsigned char* buf) = 0;
};

// A plain pages section, cut by the pagemap known before.
class PlainSource final : public BatchSource {
 public:
  PlainSource(image::SectionStream* s, const std::vector<PageRun>& runs) : s_(s), runs_(runs) {}
  Result<bool> Next(Batch* b, unsigned char* buf) override {
    b->remote.clear();
    b->bytes = 0;
    while (ri_ < runs_.size() && b->bytes < kIoChunk && b->remote.size() < kMaxIov) {
      const PageRun& r = runs_[ri_];
      std::uint64_t pages = std::min<std::uint64_t>(r.pages - roff_, (kIoChunk - b->bytes) / kPage);
      AddIov(b, r.addr + roff_ * kPage, pages * kPage);
      roff_ += pages;
      if (roff_ == r.pages) {
        ++ri_;
        roff_ = 0;
      }
    }
    if (b->bytes == 0) return false;
    RETURN_IF_ERROR(s_->Read(buf, b->bytes));
    return true;
  }

 private:
  image::SectionStream* s_;
  const std::vector<PageRun>& runs_;
  std::size_t ri_ = 0;
  std::uint64_t roff_ = 0;
};

// A page record section: records are read as they come and packed into
// batches of up to kIoChunk bytes.
class RecordSource final : public BatchSource {
 public:
  RecordSource(image::SectionStream* s, RunChecker* check, std::string where)
      : s_(s), check_(check), where_(std::move(where)) {}
  Result<bool> Next(Batch* b, unsigned char* buf) override {
    b->remote.clear();
    b->bytes = 0;
    while (true) {
      if (pending_.empty()) {
        ASSIGN_OR_RETURN(bool more, ReadRecord());
        if (!more) break;
      }
      std::uint64_t bytes = 0;
      for (const auto& r : pending_) bytes += r.pages * kPage;
      if (b->bytes + bytes > kIoChunk || b->remote.size() + pending_.size() > kMaxIov) {
        if (b->bytes == 0)
          return Corruption(where_ + ": a page record holds more than " + std::to_string(kIoChunk >> 20) +
                            " MiB");
        break;  // the record starts the next batch
      }
      RETURN_IF_ERROR(s_->Read(buf + b->bytes, bytes));
      for (const auto& r : pending_) AddIov(b, r.addr, r.pages * kPage);
      pending_.clear();
    }
    return b->bytes > 0;
  }

 private:
  // The next record's runs into pending_; false at the section's end.
  Result<bool> ReadRecord() {
    unsigned char h[4];
    ASSIGN_OR_RETURN(std::size_t got, s_->ReadSome(h, sizeof h));
    if (got == 0) return false;
    if (got < sizeof h) RETURN_IF_ERROR(s_->Read(h + got, sizeof h - got));
    std::uint32_t n = DecodeU32(h);
    if (n == 0 || n > kMaxRecordRuns) {
      return Corruption(where_ + ": a page record lists " + std::to_string(n) + " runs");
    }
    std::vector<unsigned char> runs(std::size_t{n} * 16);
    RETURN_IF_ERROR(s_->Read(runs.data(), runs.size()));
    for (std::uint32_t i = 0; i < n; ++i) {
      PageRun r{DecodeU64(runs.data() + 16 * i), DecodeU64(runs.data() + 16 * i + 8)};
      RETURN_IF_ERROR(check_->Add(r));
      pending_.push_back(r);
    }
    return true;
  }

  image::SectionStream* s_;
  RunChecker* check_;
  std::string where_;
  std::vector<PageRun> pending_;  // a record read, its pages not yet
};

// Another source's batches cut down to the pages of `wanted` (sorted,
// merged): the rest of each batch is dropped, what stays moves to the
// front of the buffer.
class FilterSource final : public BatchSource {
 public:
  FilterSource(BatchSource* inner, const std::vector<PageRun>& wanted) : inner_(inner), wanted_(wanted) {}
  Result<bool> Next(Batch* b, unsigned char* buf) override {
    Batch in;
    while (true) {
      ASSIGN_OR_RETURN(bool more, inner_->Next(&in, buf));
      if (!more) return false;
      b->remote.clear();
      b->bytes = 0;
      std::size_t off = 0;
      for (const auto& rv : in.remote) {
        std::uint64_t a = reinterpret_cast<std::uint64_t>(rv.iov_base), e = a + rv.iov_len;
        while (wi_ < wanted_.size() && wanted_[wi_].addr + wanted_[wi_].pages * kPage <= a) ++wi_;
        for (std::size_t j = wi_; j < wanted_.size() && wanted_[j].addr < e; ++j) {
          std::uint64_t lo = std::max(a, wanted_[j].addr);
          std::uint64_t hi = std::min(e, wanted_[j].addr + wanted_[j].pages * kPage);
          if (lo >= hi) continue;
          std::memmove(buf + b->bytes, buf + off + (lo - a), hi - lo);
          AddIov(b, lo, hi - lo);
          bytes_ += hi - lo;
        }
        off += rv.iov_len;
      }
      if (b->bytes > 0) return true;
    }
  }
  std::uint64_t bytes() const { return bytes_; }

 private:
  BatchSource* inner_;
  std::uint64_t bytes_ = 0;
  const std::vector<PageRun>& wanted_;
  std::size_t wi_ = 0;
};

class PagePipeline {
 public:
  PagePipeline(BatchSource* src, pid_t pid) : src_(src), pid_(pid) {
    for (auto& b : bufs_) b.reset(new unsigned char[kIoChunk]);
    reader_ = std::thread([this] { Read(); });
    writer_ = std::thread([this] { Write(); });
  }
  ~PagePipeline() {
    Fail(Status::Ok());
    reader_.join();
    writer_.join();
  }
  // Batch k once read; nullptr after the last one or if a stage failed.
  const Batch* WaitRead(std::size_t k) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return stop_ || read_ > k || (ended_ && k >= read_); });
    return stop_ || read_ <= k ? nullptr : &batches_[k % kSlots];
  }
  void Populated(std::size_t k) {
    std::lock_guard<std::mutex> l(mu_);
    populated_ = k + 1;
    cv_.notify_all();
  }
  // Stops the other stages; `st` (if an error) becomes the pipeline's result.
  void Fail(const Status& st) {
    std::lock_guard<std::mutex> l(mu_);
    if (status_.ok() && !st.ok()) status_ = st;
    stop_ = true;
    cv_.notify_all();
  }
  // Waits until every batch is written or a stage failed; `total`: the
  // bytes expected (0: not known, no progress reported).
  Status Finish(const Progress& progress, std::uint64_t total) {
    std::unique_lock<std::mutex> l(mu_);
    std::size_t reported = 0;
    while (true) {
      cv_.wait(l, [&] { return written_ > reported || (ended_ && written_ == read_) || stop_; });
      if (!status_.ok()) return status_;
      if (ended_ && written_ == read_) break;
      if (stop_) return Internal("page pipeline stopped");
      reported = written_;
      if (progress && total > 0) {
        std::uint64_t done = done_;
        l.unlock();
        progress(std::min(done, total), total);
        l.lock();
      }
    }
    if (progress && total > 0) progress(total, total);
    return Status::Ok();
  }

 private:
  static constexpr std::size_t kSlots = 4;
  void Read() {
    for (std::size_t k = 0;; ++k) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || k < written_ + kSlots; });
        if (stop_) return;
      }
      Result<bool> more = src_->Next(&batches_[k % kSlots], bufs_[k % kSlots].get());
      if (!more.ok()) return Fail(more.status());
      std::lock_guard<std::mutex> l(mu_);
      if (*more) {
        read_ = k + 1;
      } else {
        ended_ = true;
      }
      cv_.notify_all();
      if (!*more) return;
    }
  }
  void Write() {
    for (std::size_t k = 0;; ++k) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || (read_ > k && populated_ > k) || (ended_ && k >= read_); });
        if (stop_ || read_ <= k) return;
      }
      const Batch& b = batches_[k % kSlots];
      unsigned char* buf = bufs_[k % kSlots].get();
      struct iovec local = {buf, b.bytes};
      ssize_t put = ::process_vm_writev(pid_, &local, 1, b.remote.data(), b.remote.size(), 0);
      if (put != static_cast<ssize_t>(b.bytes)) {
        std::size_t off = 0;
        for (const auto& rv : b.remote) {
          Status st = WriteMemory(pid_, reinterpret_cast<std::uint64_t>(rv.iov_base), buf + off, rv.iov_len);
          if (!st.ok()) return Fail(st);
          off += rv.iov_len;
        }
      }
      std::lock_guard<std::mutex> l(mu_);
      written_ = k + 1;
      done_ += b.bytes;
      cv_.notify_all();
    }
  }

  BatchSource* src_;
  pid_t pid_;
  std::unique_ptr<unsigned char[]> bufs_[kSlots];
  Batch batches_[kSlots];
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t read_ = 0, populated_ = 0, written_ = 0;
  std::uint64_t done_ = 0;
  bool ended_ = false;  // the source has no more batches (read_ is their count)
  bool stop_ = false;
  Status status_;
  std::thread reader_, writer_;
};

// Runs the pipeline over `src`, populating each batch from this (the
// tracing) thread.
Status RunPipeline(BatchSource* src, pid_t pid, Injector* inj, const Progress& progress,
                   std::uint64_t total) {
  PagePipeline pipe(src, pid);
  for (std::size_t k = 0;; ++k) {
    const Batch* b = pipe.WaitRead(k);
    if (b == nullptr) break;
    // Populating in bulk is much faster than faulting page by page.
    for (const auto& rv : b->remote) {
      if (rv.iov_len < 16 * kPage) continue;
      Status st = inj->Call("madvise(MADV_POPULATE_WRITE)", SYS_madvise,
                            {reinterpret_cast<std::uint64_t>(rv.iov_base), rv.iov_len, MADV_POPULATE_WRITE})
                      .status();
      if (!st.ok()) {
        pipe.Fail(st);
        return st;
      }
    }
    pipe.Populated(k);
  }
  return pipe.Finish(progress, total);
}

bool IsPages(const image::SectionInfo& s, const std::optional<std::string>& prefix) {
  if (s.type != kSecPages && s.type != kSecPageRecords && s.type != kSecDeltaPages) return false;
  return !prefix || s.name == *prefix + "pages";
}

}  // namespace

std::string EncodePageRecord(const std::vector<PageRun>& runs) {
  std::string o;
  PutU32(&o, static_cast<std::uint32_t>(runs.size()));
  for (const auto& r : runs) {
    PutU64(&o, r.addr);
    PutU64(&o, r.pages);
  }
  return o;
}

Status CheckRuns(const std::vector<Vma>& vmas, const std::vector<PageRun>& runs, const std::string& where) {
  RunChecker check(vmas, where);
  for (const auto& r : runs) RETURN_IF_ERROR(check.Add(r));
  return Status::Ok();
}

Status RestorePageSubset(image::ImageReader* r, const std::string& prefix, const std::vector<PageRun>& wanted,
                         pid_t pid, Injector* inj, std::uint64_t* pages) {
  const std::string& name = r->source().Name();
  ASSIGN_OR_RETURN(const image::SectionInfo* s, SeekPages(r, prefix));
  if (s == nullptr) return Corruption(name + ": process image has no " + prefix + "pages section");
  // The runs were checked against the restored process's mappings; this
  // image's own are only checked for order (its mappings may differ).
  std::vector<Vma> anywhere(1);
  anywhere[0].start = 0;
  anywhere[0].end = ~std::uint64_t{0} & ~(kPage - 1);
  RunChecker check(anywhere, name);
  ASSIGN_OR_RETURN(auto stream, r->OpenSection(*s));
  std::vector<PageRun> listed;
  std::unique_ptr<BatchSource> inner;
  if (s->type != kSecPages) {
    inner = std::make_unique<RecordSource>(stream.get(), &check, name + ": section '" + s->name + "'");
  } else {
    ASSIGN_OR_RETURN(const image::SectionInfo* pm, r->Seek(kSecPagemap, prefix + "pagemap"));
    if (pm == nullptr) return Corruption(name + ": process image has no " + prefix + "pagemap section");
    ASSIGN_OR_RETURN(std::string data, r->ReadSection(*pm));
    ASSIGN_OR_RETURN(listed, DecodePagemapSection(data));
    for (const auto& run : listed) RETURN_IF_ERROR(check.Add(run));
    if (s->raw_size != PagemapPages(listed) * kPage)
      return Corruption(name + ": pages section disagrees with its " + prefix + "pagemap");
    inner = std::make_unique<PlainSource>(stream.get(), listed);
  }
  FilterSource src(inner.get(), wanted);
  RETURN_IF_ERROR(RunPipeline(&src, pid, inj, Progress(), 0));
  RETURN_IF_ERROR(stream->Drain());
  if (src.bytes() != PagemapPages(wanted) * kPage)
    return Corruption(name + ": holds " + std::to_string(src.bytes() / kPage) + " of the " +
                      std::to_string(PagemapPages(wanted)) + " pages its child image takes from it");
  *pages += PagemapPages(wanted);
  return Status::Ok();
}

Result<const image::SectionInfo*> SeekPages(image::ImageReader* r, const std::optional<std::string>& prefix) {
  for (const image::SectionInfo* s : r->Known()) {
    if (IsPages(*s, prefix)) return s;
  }
  if (!r->streamed()) return static_cast<const image::SectionInfo*>(nullptr);
  while (true) {
    ASSIGN_OR_RETURN(const image::SectionInfo* s, r->NextSection());
    if (s == nullptr || IsPages(*s, prefix)) return s;
  }
}

Status RestorePages(const ProcessModel& m, image::ImageReader* r, const std::string& prefix, pid_t pid,
                    Injector* inj, const Progress& progress, std::uint64_t* pages) {
  const std::string& name = r->source().Name();
  ASSIGN_OR_RETURN(const image::SectionInfo* s, SeekPages(r, prefix));
  if (s == nullptr) return Corruption(name + ": process image has no pages section");
  bool records = s->type != kSecPages;
  std::uint64_t total = PagemapPages(m.pagemap) * kPage;
  if (!records && s->raw_size != total) {
    return Corruption(name + ": pages section holds " + std::to_string(s->raw_size) +
                      " bytes, the pagemap lists " + std::to_string(total));
  }
  RunChecker check(m.vmas, name);
  ASSIGN_OR_RETURN(auto stream, r->OpenSection(*s));
  if (records) {
    RecordSource src(stream.get(), &check, name + ": section '" + s->name + "'");
    RETURN_IF_ERROR(RunPipeline(&src, pid, inj, progress, s->raw_size));
  } else {
    for (const auto& run : m.pagemap) RETURN_IF_ERROR(check.Add(run));
    PlainSource src(stream.get(), m.pagemap);
    RETURN_IF_ERROR(RunPipeline(&src, pid, inj, progress, total));
  }
  RETURN_IF_ERROR(stream->Drain());
  *pages = PagemapPages(check.runs());
  if (!records) return Status::Ok();
  // The records against the pagemap (which a streamed image has after the pages).
  std::vector<PageRun> listed = m.pagemap;
  if (listed.empty()) {
    ASSIGN_OR_RETURN(const image::SectionInfo* pm, r->Seek(kSecPagemap, prefix + "pagemap"));
    if (pm == nullptr) return Corruption(name + ": process image has no " + prefix + "pagemap section");
    ASSIGN_OR_RETURN(std::string data, r->ReadSection(*pm));
    ASSIGN_OR_RETURN(listed, DecodePagemapSection(data));
  }
  auto same_run = [](const PageRun& a, const PageRun& b) { return a.addr == b.addr && a.pages == b.pages; };
  if (!std::equal(listed.begin(), listed.end(), check.runs().begin(), check.runs().end(), same_run))
    return Corruption(name + ": the page records disagree with the " + prefix + "pagemap section");
  return Status::Ok();
}

}  // namespace ckpt::engine
