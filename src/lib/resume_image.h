// The image a program resumes from (--ckpt-resume, CKPT_RESUME, a group
// member's share): its META and PROGRESS, its variables by name, and at the
// end the checks that need all of it. A migrated program's image may be read
// while it still arrives (CKPT_RESUME_FOLLOW, set by `ckpt receive`): then
// the variables load as their bytes come, in the order they were written,
// and Finish() waits for the rest and checks the section table.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "image/reader.h"
#include "lib/program_image.h"
#include "platform/env.h"
#include "util/status.h"

namespace ckpt::lib {

class ResumeImage {
 public:
  // `streamed_limit` > 0: `src` is still being written, and holds at most
  // that many bytes. `check_name`: the image must be program `name`'s.
  static Result<std::unique_ptr<ResumeImage>> Open(std::unique_ptr<image::RandomAccessSource> src,
                                                   std::uint64_t streamed_limit, const std::string& name,
                                                   bool check_name);

  const std::string& path() const { return path_; }
  const Progress& progress() const { return progress_; }
  bool streamed() const { return reader_->streamed(); }
  // The image's variable `name`, or nullptr if it has none.
  Result<const image::SectionInfo*> Var(const std::string& name);
  Result<std::unique_ptr<image::SectionStream>> OpenSection(const image::SectionInfo& s) const {
    return reader_->OpenSection(s);
  }
  // Whether the image holds a group of one's objects (the group then reads
  // the file itself: a streamed image is read to its end first).
  Result<bool> HasSoloGroup();
  // After the program declared its variables: the rest of a streamed image
  // read and its table checked, sections of types this build does not know
  // refused, and the names of the image's variables missing from `claimed`.
  Result<std::vector<std::string>> Finish(const std::set<std::string>& claimed);

 private:
  explicit ResumeImage(std::unique_ptr<image::ImageReader> r) : reader_(std::move(r)) {}
  Status CheckSectionTypes() const;

  std::unique_ptr<image::ImageReader> reader_;
  std::string path_;
  Meta meta_;
  Progress progress_;
};

// CKPT_RESUME_FOLLOW ("LIMIT WRITER_PID PATH"): the image at PATH is being
// written by process WRITER_PID and will hold at most LIMIT bytes; PATH.complete
// appears once it is whole. Taken out of the environment when read.
struct ResumeFollow {
  std::uint64_t limit = 0;
  std::int64_t writer = 0;
  std::string path;
};
std::string EncodeResumeFollow(const ResumeFollow& f);
std::optional<ResumeFollow> ParseResumeFollow(const std::string& text);
inline constexpr const char* kResumeFollowEnv = "CKPT_RESUME_FOLLOW";
inline std::string CompleteMarker(const std::string& image) {
  return image + ".complete";
}

}  // namespace ckpt::lib
