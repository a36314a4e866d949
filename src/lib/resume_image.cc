#include "lib/resume_image.h"

#include <cstdlib>

#include "group/group_image.h"

namespace ckpt::lib {

Result<std::unique_ptr<ResumeImage>> ResumeImage::Open(std::unique_ptr<image::RandomAccessSource> src,
                                                       std::uint64_t streamed_limit, const std::string& name,
                                                       bool check_name) {
  std::string path = src->Name();
  std::unique_ptr<image::ImageReader> reader;
  if (streamed_limit > 0) {
    ASSIGN_OR_RETURN(reader, image::ImageReader::OpenStreamed(std::move(src), streamed_limit));
  } else {
    ASSIGN_OR_RETURN(reader, image::ImageReader::Open(std::move(src)));
  }
  if (reader->header().kind != image::ImageKind::kProgram) {
    return InvalidArgument(path + " is a " + image::ImageKindName(reader->header().kind) +
                           " image, not a program image");
  }
  std::unique_ptr<ResumeImage> r(new ResumeImage(std::move(reader)));
  r->path_ = path;
  ASSIGN_OR_RETURN(const image::SectionInfo* meta, r->reader_->Seek(kSectionMeta));
  ASSIGN_OR_RETURN(const image::SectionInfo* prog, r->reader_->Seek(kSectionProgress));
  if (meta == nullptr || prog == nullptr) return Corruption(path + ": META or PROGRESS section missing");
  // A whole image is refused before anything is loaded from it; a streamed
  // one when its end has come (Finish).
  if (!r->streamed()) RETURN_IF_ERROR(r->CheckSectionTypes());
  ASSIGN_OR_RETURN(std::string mdata, r->reader_->ReadSection(*meta));
  RETURN_IF_ERROR(DecodeMeta(mdata, &r->meta_).WithContext(path));
  if (std::string writer = r->meta_.Get("program.name"); check_name && !writer.empty() && writer != name) {
    return InvalidArgument(path + " is an image of program '" + writer + "', not of this program '" + name +
                           "' (to resume it anyway, run with --ckpt-name " + writer + ")");
  }
  ASSIGN_OR_RETURN(std::string pdata, r->reader_->ReadSection(*prog));
  RETURN_IF_ERROR(DecodeProgress(pdata, &r->progress_).WithContext(path));
  return r;
}

Status ResumeImage::CheckSectionTypes() const {
  for (const auto& s : reader_->sections()) {
    bool solo_group = s.type == group::kSectionObjects || s.type == group::kSectionSegment;
    if (s.type > kSectionVar && !solo_group && (s.flags & image::kSectionRequired)) {
      return NotSupported(path_ + ": section '" + s.name + "' has type " + std::to_string(s.type) +
                          ", unknown to this build (a newer ckpt wrote it)");
    }
  }
  return Status::Ok();
}

Result<const image::SectionInfo*> ResumeImage::Var(const std::string& name) {
  return reader_->Seek(kSectionVar, name);
}

Result<bool> ResumeImage::HasSoloGroup() {
  // The writer says so in META (image.solo_group, since 2026-12); an image
  // that does not say is read whole to find out.
  if (streamed()) {
    if (meta_.Get("image.solo_group") == "0") return false;
    RETURN_IF_ERROR(reader_->Finish());
  }
  ASSIGN_OR_RETURN(const image::SectionInfo* objs, reader_->Seek(group::kSectionObjects));
  return objs != nullptr;
}

Result<std::vector<std::string>> ResumeImage::Finish(const std::set<std::string>& claimed) {
  if (streamed()) {
    RETURN_IF_ERROR(reader_->Finish());
    RETURN_IF_ERROR(CheckSectionTypes());
  }
  std::vector<std::string> unclaimed;
  for (const auto& s : reader_->sections()) {
    if (s.type == kSectionVar && !claimed.count(s.name)) unclaimed.push_back("'" + s.name + "'");
  }
  return unclaimed;
}

std::string EncodeResumeFollow(const ResumeFollow& f) {
  return std::to_string(f.limit) + " " + std::to_string(f.writer) + " " + f.path;
}

std::optional<ResumeFollow> ParseResumeFollow(const std::string& text) {
  ResumeFollow f;
  std::size_t a = text.find(' ');
  std::size_t b = a == std::string::npos ? a : text.find(' ', a + 1);
  if (b == std::string::npos || b + 1 >= text.size()) return std::nullopt;
  char* end = nullptr;
  f.limit = std::strtoull(text.c_str(), &end, 10);
  if (end != text.c_str() + a || f.limit == 0) return std::nullopt;
  f.writer = std::strtoll(text.c_str() + a + 1, &end, 10);
  if (end != text.c_str() + b || f.writer <= 0) return std::nullopt;
  f.path = text.substr(b + 1);
  return f;
}

}  // namespace ckpt::lib
