#include "lib/registration.h"

#include <cstdio>

#include "lib/program_image.h"
#include "util/utf8.h"

namespace ckpt::lib {

Registration::Registration(platform::Env* env, std::string program, std::string dir)
    : env_(env), program_(std::move(program)), dir_(std::move(dir)) {
  path_ = PathFor(env_, env_->ProcessId());
  start_time_ = env_->ProcessStartTime(env_->ProcessId());
}

Registration::~Registration() {
  if (written_ && !keep_) env_->RemoveFile(path_).IgnoreError();
}

std::string Registration::PathFor(platform::Env* env, std::int64_t pid) {
  return platform::JoinPath(env->RuntimeDir(), std::to_string(pid) + ".json");
}

Status Registration::Publish(std::uint64_t generation, const std::string& last_image,
                             const std::string& last_error, bool exited) {
  RETURN_IF_ERROR(env_->CreateDirs(env_->RuntimeDir()));
  std::string j =
      "{\"pid\": " + std::to_string(env_->ProcessId()) + ", \"program\": " + JsonBytes(program_) +
      ", \"dir\": " + JsonBytes(dir_) + ", \"platform\": \"" + PlatformTag() +
      "\", \"start_time\": " + std::to_string(start_time_) + ", \"exited\": " + (exited ? "true" : "false") +
      ", \"generation\": " + std::to_string(generation) + ", \"last_image\": " + JsonBytes(last_image) +
      ", \"last_error\": " + JsonBytes(last_error) + "}\n";
  Status st = platform::WriteFileAtomic(env_, path_, j, /*durable=*/false);
  if (st.ok()) written_ = true;
  keep_ = exited;
  return st;
}

}  // namespace ckpt::lib
