// The lazy filler's plan (lazy_plan.h): page record sections indexed, the
// pages a member wants cut into extents of their frames, the post-copy
// source's frames.
#include "engine/lazy_plan.h"

#include <algorithm>

#include "image/checksum.h"
#include "util/bytes.h"

namespace ckpt::engine {

namespace {
constexpr std::uint64_t kPage = kPageSize;
}  // namespace

bool LazyEligible(const Vma& v) {
  if ((v.flags & (kVmaShared | kVmaSharedObject)) != 0) return false;
  return v.kind == VmaKind::kAnon || v.kind == VmaKind::kHeap || v.kind == VmaKind::kStack;
}

std::vector<PageRun> LazyEligibleRuns(const std::vector<Vma>& vmas) {
  std::vector<PageRun> out;
  for (const auto& v : vmas) {
    if (!LazyEligible(v) || v.end <= v.start) continue;
    if (!out.empty() && out.back().addr + out.back().pages * kPage == v.start) {
      out.back().pages += v.size() / kPage;
    } else {
      out.push_back({v.start, v.size() / kPage});
    }
  }
  return out;
}

namespace {

// Where each page of a page record section lies: pieces (addr, pages,
// frame, first page in it) in the section's order. Only sections written
// as ckpt writes them (a raw record frame, then raw frames of whole pages)
// are indexed; NotSupported otherwise.
Status IndexSection(const image::ImageReader& r, const image::SectionInfo& s, std::vector<PageFrame>* frames,
                    std::vector<Extent>* pieces) {
  const image::RandomAccessSource& src = r.source();
  const std::string where = src.Name() + ": section '" + s.name + "'";
  if (s.codec != image::CodecId::kNone) return NotSupported(where + " is compressed");
  std::string head(static_cast<std::size_t>(std::min<std::uint64_t>(s.stored_size, 4096)), '\0');
  RETURN_IF_ERROR(src.ReadAt(s.offset, head.size(), head.data()));
  ASSIGN_OR_RETURN(image::SectionHeader h, image::ParseSectionHeader(head));
  std::uint64_t pos = s.offset + h.size, end = s.offset + s.stored_size;
  std::vector<PageRun> runs;
  std::size_t ri = 0;
  std::uint64_t roff = 0, left = 0;
  while (pos + image::kFrameHeaderSize <= end) {
    unsigned char fh[image::kFrameHeaderSize];
    RETURN_IF_ERROR(src.ReadAt(pos, sizeof fh, fh));
    std::uint32_t raw = DecodeU32(fh), stored = DecodeU32(fh + 4);
    std::uint64_t sum = DecodeU64(fh + 8);
    if (raw == 0) break;
    if (stored != (raw | image::kFrameStoredRaw) || raw > end - pos - sizeof fh)
      return NotSupported(where + ": a frame is not stored raw");
    std::uint64_t data = pos + sizeof fh;
    if (left == 0) {
      if (raw < 20 || (raw - 4) % 16 != 0 || (raw - 4) / 16 > kMaxRecordRuns)
        return Corruption(where + ": malformed page record");
      std::string rec(raw, '\0');
      RETURN_IF_ERROR(src.ReadAt(data, raw, rec.data()));
      if (image::Checksum64(rec.data(), raw) != sum)
        return Corruption(where + ": page record checksum mismatch");
      const auto* p = reinterpret_cast<const unsigned char*>(rec.data());
      std::uint32_t n = DecodeU32(p);
      if (n * 16 + 4 != raw) return Corruption(where + ": malformed page record");
      runs.clear();
      for (std::uint32_t i = 0; i < n; ++i) {
        PageRun run{DecodeU64(p + 4 + 16 * i), DecodeU64(p + 12 + 16 * i)};
        if (run.pages == 0 || run.pages > (1u << 20) || (run.addr & (kPage - 1)) != 0)
          return Corruption(where + ": malformed page run");
        runs.push_back(run);
        left += run.pages * kPage;
      }
      ri = 0;
      roff = 0;
    } else {
      if (raw % kPage != 0 || raw > left) return NotSupported(where + ": a frame holds part of a page");
      auto idx = static_cast<std::uint32_t>(frames->size());
      frames->push_back({&src, data, raw, sum});
      std::uint64_t pages = raw / kPage, fp = 0;
      while (pages > 0) {
        std::uint64_t take = std::min(pages, runs[ri].pages - roff);
        Extent e;
        e.addr = runs[ri].addr + roff * kPage;
        e.pages = static_cast<std::uint32_t>(take);
        e.frame = idx;
        e.first = static_cast<std::uint32_t>(fp);
        pieces->push_back(std::move(e));
        fp += take;
        pages -= take;
        roff += take;
        if (roff == runs[ri].pages) {
          ++ri;
          roff = 0;
        }
      }
      left -= raw;
    }
    pos = data + raw;
  }
  if (left != 0) return Corruption(where + ": the section ends inside a page record");
  return Status::Ok();
}

const image::SectionInfo* FindPages(const image::ImageReader& r, const std::string& prefix) {
  for (std::uint32_t type : {kSecPageRecords, kSecDeltaPages}) {
    if (const image::SectionInfo* s = r.Find(type, prefix + "pages")) return s;
  }
  return nullptr;
}

// Plans `wanted` against `pieces` (each a part of one of `out`'s frames, in
// address order): the extents to fill lazily, the pages to write at once,
// and (out->left) those no piece gives.
void PlanPieces(const std::vector<Extent>& pieces, const std::vector<PageRun>& wanted,
                const std::vector<PageRun>& eligible, LinkPlan* outp) {
  LinkPlan& out = *outp;
  std::vector<PageRun> taken;
  std::size_t j = 0, el = 0;
  for (const Extent& piece : pieces) {
    while (j < wanted.size() && wanted[j].addr + wanted[j].pages * kPage <= piece.addr) ++j;
    while (el < eligible.size() && eligible[el].addr + eligible[el].pages * kPage <= piece.addr) ++el;
    // Usually the whole piece lies in one private anonymous mapping.
    const bool whole = el < eligible.size() && eligible[el].addr <= piece.addr &&
                       piece.end() <= eligible[el].addr + eligible[el].pages * kPage;
    for (std::size_t k = j; k < wanted.size() && wanted[k].addr < piece.end(); ++k) {
      std::uint64_t lo = std::max(piece.addr, wanted[k].addr);
      std::uint64_t hi = std::min(piece.end(), wanted[k].addr + wanted[k].pages * kPage);
      if (lo >= hi) continue;
      taken.push_back({lo, (hi - lo) / kPage});
      // Extents never overlap: each holds exactly pages this image gives.
      auto part = [&](std::vector<Extent>* to, std::uint64_t a, std::uint64_t pages) {
        Extent x;
        x.addr = a;
        x.pages = static_cast<std::uint32_t>(pages);
        x.frame = piece.frame;
        x.first = piece.first + static_cast<std::uint32_t>((a - piece.addr) / kPage);
        x.left = x.pages;
        to->push_back(std::move(x));
      };
      if (whole) {
        part(&out.extents, lo, (hi - lo) / kPage);
        continue;
      }
      for (const PageRun& p : RunsIntersect({{lo, (hi - lo) / kPage}}, eligible))
        part(&out.extents, p.addr, p.pages);
      for (const PageRun& p : RunsSubtract({{lo, (hi - lo) / kPage}}, eligible))
        part(&out.eager, p.addr, p.pages);
    }
  }
  std::sort(taken.begin(), taken.end(), [](const PageRun& a, const PageRun& b) { return a.addr < b.addr; });
  out.left = RunsSubtract(wanted, RunsUnion(taken, {}));
}

}  // namespace

// Plans `wanted` against the section `prefix`pages of `r`.
LinkPlan MakePlan(const image::ImageReader& r, const std::string& prefix, const std::vector<PageRun>& wanted,
                  const std::vector<PageRun>& eligible) {
  LinkPlan out;
  out.left = wanted;
  const image::SectionInfo* s = FindPages(r, prefix);
  if (s == nullptr || wanted.empty()) return out;  // the eager path reports what is missing
  std::vector<Extent> pieces;
  out.status = IndexSection(r, *s, &out.frames, &pieces);
  if (out.status.code() == Code::kNotSupported) out.status = Status::Ok();
  if (!out.status.ok() || out.frames.empty()) {
    out.frames.clear();
    return out;
  }
  PlanPieces(pieces, wanted, eligible, &out);
  return out;
}

// Plans `wanted` from a post-copy source: frames of up to kRemoteFramePages
// pages each, never across a run of `held` (what the source lists).
LinkPlan MakeRemotePlan(const image::RandomAccessSource* src, const std::vector<PageRun>& held,
                        const std::vector<PageRun>& wanted, const std::vector<PageRun>& eligible) {
  LinkPlan out;
  std::vector<Extent> pieces;
  for (const PageRun& run : RemoteFrames(held)) {
    Extent e;
    e.addr = run.addr;
    e.pages = static_cast<std::uint32_t>(run.pages);
    e.frame = static_cast<std::uint32_t>(out.frames.size());
    pieces.push_back(std::move(e));
    out.frames.push_back({src, run.addr, static_cast<std::uint32_t>(run.pages * kPage), 0, false});
  }
  out.left = wanted;
  PlanPieces(pieces, wanted, eligible, &out);
  return out;
}

std::vector<PageRun> RemoteFrames(const std::vector<PageRun>& held) {
  std::vector<PageRun> out;
  for (const PageRun& run : RunsUnion(held, {})) {
    for (std::uint64_t p = 0; p < run.pages; p += kRemoteFramePages)
      out.push_back({run.addr + p * kPage, std::min<std::uint64_t>(kRemoteFramePages, run.pages - p)});
  }
  return out;
}

}  // namespace ckpt::engine
