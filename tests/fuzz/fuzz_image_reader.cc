// libFuzzer target: arbitrary bytes through the image reader, the program
// image sections and the descriptor-driven value decoder. Anything but a
// clean Status is a bug (crash, hang, sanitizer report, huge allocation).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ckpt/serialize.hpp"
#include "image/reader.h"
#include "lib/program_image.h"
#include "lib/section_io.h"
#include "state/compat.h"
#include "state/value_walk.h"

// Inputs starting with 'T' bypass the checksums (which stop most mutations
// early): "T<type descriptor>\n<value bytes>" goes straight to the parser and
// the value decoder.
static void FuzzValue(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  if (nl == std::string_view::npos) return;
  ckpt::TypeDesc d;
  if (!ckpt::ParseTypeDesc(in.substr(1, nl - 1), &d)) return;
  (void)d.ToString();
  ckpt::StringReader r(in.substr(nl + 1));
  std::string out;
  ckpt::state::WalkValue(r, d, &out, 200);
}

// The same bytes read as an image still arriving (ImageReader::OpenStreamed):
// sections in file order through open-ended streams, then the table check.
static void FuzzStreamed(const std::string& bytes) {
  using namespace ckpt;
  auto r = image::ImageReader::OpenStreamed(std::make_unique<image::StringSource>(bytes, "fuzz"),
                                            bytes.size() + 64);
  if (!r.ok()) return;
  for (int i = 0; i < 64; ++i) {
    auto s = (*r)->NextSection();
    if (!s.ok() || *s == nullptr) break;
    auto stream = (*r)->OpenSection(**s);
    if (!stream.ok()) break;
    TypeDesc d;
    if (ParseTypeDesc((*s)->attrs, &d)) {
      lib::SectionReader sr(stream->get());
      std::string out;
      state::WalkValue(sr, d, &out, 200);
      sr.FinishSection();
    } else {
      (void)(*stream)->Drain();
    }
  }
  (void)(*r)->Finish();
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ckpt;
  if (size > 0 && data[0] == 'T') {
    FuzzValue(data, size);
    return 0;
  }
  std::string bytes(reinterpret_cast<const char*>(data), size);
  FuzzStreamed(bytes);
  auto src = std::make_unique<image::StringSource>(std::move(bytes), "fuzz");
  auto r = image::ImageReader::Open(std::move(src));
  if (!r.ok()) return 0;
  (void)(*r)->VerifyAll();
  for (const auto& s : (*r)->sections()) {
    auto stream = (*r)->OpenSection(s);
    if (!stream.ok()) continue;
    if (s.type == lib::kSectionMeta || s.type == lib::kSectionProgress) {
      auto all = (*stream)->ReadAll();
      if (!all.ok()) continue;
      lib::Meta m;
      lib::Progress p;
      (void)lib::DecodeMeta(*all, &m);
      (void)lib::DecodeProgress(*all, &p);
      continue;
    }
    TypeDesc d;
    if (!ParseTypeDesc(s.attrs, &d)) continue;
    (void)state::Compatible(d, d);
    lib::SectionReader sr(stream->get());
    std::string out;
    state::WalkValue(sr, d, &out, 200);
  }
  return 0;
}
