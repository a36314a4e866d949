// The lazy filler's plan (lazy.cc): where each page a restored member takes
// lazily lies, in a spool image or at a post-copy source. Internal to the
// engine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/lazy.h"
#include "engine/pagemap.h"
#include "image/reader.h"
#include "util/status.h"

namespace ckpt::engine {

// The stored bytes of one frame of page data (raw, never compressed).
struct PageFrame {
  const image::RandomAccessSource* src = nullptr;
  std::uint64_t off = 0;  // of the data in the file
  std::uint32_t len = 0;
  std::uint64_t sum = 0;
  bool verify = true;  // false: `sum` unknown (pages from a post-copy source, checked on the wire)
};

// Pages [addr, addr + pages*4K) of a process, page `first` on of `frame`.
struct Extent {
  std::uint64_t addr = 0;
  std::uint32_t pages = 0;
  std::uint32_t frame = 0;
  std::uint32_t first = 0;
  std::vector<bool> pending;
  std::uint32_t left = 0;
  std::uint64_t end() const { return addr + pages * kPageSize; }
};

// What a member takes lazily from one image (LazyFill::Plan), made in the
// background: its extents (frames numbered from the section's first), the
// pages to write before it runs (outside private anonymous mappings:
// extents too), and the pages the section could not give.
struct LinkPlan {
  Status status;
  std::vector<PageFrame> frames;
  std::vector<Extent> extents, eager;
  std::vector<PageRun> left;
};

// A private anonymous mapping (anon, heap, stack): its pages may fill lazily.
bool LazyEligible(const Vma& v);

// A member's pages at a post-copy source, as a source of frames: offsets
// are addresses.
class RemoteMember final : public image::RandomAccessSource {
 public:
  RemoteMember(RemotePages* remote, std::int32_t pid)
      : remote_(remote), pid_(pid), name_(remote->Describe() + " (process " + std::to_string(pid) + ")") {}
  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override {
    return remote_->Read(pid_, offset, size, dst);
  }
  std::uint64_t Size() const override { return ~std::uint64_t{0}; }
  const std::string& Name() const override { return name_; }

 private:
  RemotePages* remote_;
  std::int32_t pid_;
  std::string name_;
};

// Plans `wanted` (the member's pages) against the page records of image `r`
// named by `prefix`; `eligible`: the runs that may fill lazily.
LinkPlan MakePlan(const image::ImageReader& r, const std::string& prefix, const std::vector<PageRun>& wanted,
                  const std::vector<PageRun>& eligible);
// Plans `wanted` from a post-copy source listing `held`.
LinkPlan MakeRemotePlan(const image::RandomAccessSource* src, const std::vector<PageRun>& held,
                        const std::vector<PageRun>& wanted, const std::vector<PageRun>& eligible);

}  // namespace ckpt::engine
