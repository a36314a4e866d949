// The layout of a program image (ImageKind::kProgram) on top of the image
// container: a META section (producer facts), a PROGRESS section (checkpoint
// sequence, completed stages) and one VAR section per variable, named after
// it, whose attrs hold the variable's type descriptor. Also image file naming
// in a checkpoint directory. Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "image/section_types.h"
#include "platform/env.h"
#include "util/status.h"

namespace ckpt::lib {

// Section types of program images (image/section_types.h).
enum SectionType : std::uint32_t {
  kSectionMeta = image::kSecMeta,
  kSectionProgress = image::kSecProgress,
  kSectionVar = image::kSecVar,
};

// Ordered key/value pairs.
struct Meta {
  std::vector<std::pair<std::string, std::string>> kv;
  void Set(std::string key, std::string value);
  std::string Get(std::string_view key) const;
};
std::string EncodeMeta(const Meta& m);
Status DecodeMeta(std::string_view data, Meta* m);

struct Progress {
  std::uint64_t seq = 0;      // this image's checkpoint number
  std::uint64_t resumes = 0;  // how many times the computation has been resumed
  std::vector<std::string> stages_done;
};
std::string EncodeProgress(const Progress& p);
Status DecodeProgress(std::string_view data, Progress* p);

// Facts about this build and host, as META entries.
Meta ProducerMeta(platform::Env* env);
// "linux-x86_64", from the compiler's target macros.
std::string PlatformTag();
std::string CpuName();
std::string FormatTime(std::int64_t unix_nanos);

// The program's arguments recorded in META (program.args, NUL-separated;
// program.argc "0": none).
std::vector<std::string> ProgramArgs(const Meta& m);

// "<name>.<seq>.ckpt" with seq zero-padded to 6 digits.
std::string ImageFileName(const std::string& name, std::uint64_t seq);
bool ParseImageFileName(const std::string& file, std::string* name, std::uint64_t* seq);
// Images NAME.SEQ.ckpt in `dir`, newest (highest seq) first: only those whose
// NAME is exactly `name` (so "heat" never takes "heat2" or "heat.v2"), or all
// of them when `name` is empty.
Result<std::vector<std::string>> ListImages(platform::Env* env, const std::string& dir,
                                            const std::string& name);

// The highest SEQ of the images NAME.SEQ.ckpt in `dir` (0 if none).
std::uint64_t LatestImageSeq(platform::Env* env, const std::string& dir, const std::string& name);
// Removes all but the newest `keep` images NAME.SEQ.ckpt in `dir`.
void PruneImages(platform::Env* env, const std::string& dir, const std::string& name, int keep);

}  // namespace ckpt::lib
