// The `ckpt` command line: each verb lives in its own file and registers a
// CLI11 subcommand plus the function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "image/reader.h"
#include "platform/env.h"
#include "util/status.h"

namespace ckpt::group {
struct CoordinatorOptions;
}

namespace ckpt::cli {

// Exit statuses shared by all verbs (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the operation failed (I/O, process gone ...)
inline constexpr int kExitUsage = 2;     // bad command line
inline constexpr int kExitBadImage = 3;  // image corrupt, truncated, unsupported, mismatched

using Runner = std::function<int()>;

// Each verb: adds its subcommand to `app` and stores its runner in *run
// (called after a successful parse when that subcommand was chosen).
void AddInspect(CLI::App& app, Runner* run);
void AddVerify(CLI::App& app, Runner* run);
void AddConvert(CLI::App& app, Runner* run);
void AddCheckpoint(CLI::App& app, Runner* run);
void AddList(CLI::App& app, Runner* run);
void AddRelease(CLI::App& app, Runner* run);
void AddResume(CLI::App& app, Runner* run);
void AddRun(CLI::App& app, Runner* run);
void AddJob(CLI::App& app, Runner* run);
void AddEvacuate(CLI::App& app, Runner* run);
void AddRebalance(CLI::App& app, Runner* run);
void AddMigrate(CLI::App& app, Runner* run);
void AddReceive(CLI::App& app, Runner* run);
#if CKPT_HAVE_ENGINE
// The transparent Linux engine (native Linux x86-64 builds only).
void AddDump(CLI::App& app, Runner* run);
void AddRestore(CLI::App& app, Runner* run);
void AddCheck(CLI::App& app, Runner* run);
#endif

// Shared helpers.
// Opens an image file, or the newest image in a directory.
Result<std::unique_ptr<image::ImageReader>> OpenImage(const std::string& path, std::string* resolved);
// Prints "ckpt: error: ..." and returns the exit status for `st`.
int ReportError(const Status& st);
int ExitCodeFor(const Status& st);
std::string HumanBytes(std::uint64_t n);
// --image-mode MODE (octal, 0600..0777): the permission bits of new images.
void AddImageModeOption(CLI::App* c, unsigned* mode);
// `s` with control characters and invalid UTF-8 escaped (\xNN, \u00NN), for
// human-readable output of strings that come from images or other processes.
std::string Printable(std::string_view s);
// printf to stdout through Printable (line breaks kept): for human-readable
// output that quotes image contents.
#ifdef __MINGW32__
void PrintText(const char* fmt, ...) __attribute__((format(gnu_printf, 1, 2)));
#else
void PrintText(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
// Prints `j` indented by 2 on stdout. Strings that are not valid UTF-8 (paths,
// arguments, image strings are bytes) become arrays of byte values, and
// object keys that are not valid UTF-8 get \xHH escapes (docs/cli.md).
void PrintJson(const nlohmann::ordered_json& j);
void PrintJson(const nlohmann::json& j);
// The byte string under `key` in a JSON object written by the library or the
// coordinator (src/util/utf8.h): a string, or an array of byte values; `def`
// when absent or of another type.
std::string JsonBytesValue(const nlohmann::json& obj, const char* key, const std::string& def = "");
// The group part of `ckpt inspect` (inspect_group.cc).
Status InspectGroup(const image::ImageReader& r, nlohmann::ordered_json* out);
void PrintGroup(const nlohmann::ordered_json& group);
// A group of one's objects in a program image ("" json when it has none);
// Corruption when a segment's contents are missing.
Status InspectSoloObjects(const image::ImageReader& r, nlohmann::ordered_json* out);
void PrintGroupObjects(const nlohmann::ordered_json& objects);
// The coordinator options `ckpt run` and `ckpt resume` (of a group image) share.
void AddGroupOptions(CLI::App* c, group::CoordinatorOptions* co);
// The name of a group's images: the spec file's name up to its first dot,
// else the first member's program (launchers such as wine and qemu-* skipped,
// .exe dropped). `ckpt job` names a single program the same way.
std::string DefaultGroupName(const std::vector<std::vector<std::string>>& launches, const std::string& spec);
// `ckpt resume` of a group image (cmd_resume_group.cc).
struct GroupResumeOverrides {
  std::string spec;      // per-member commands
  std::string bindir;    // run each member's program by its base name from here
  std::string launcher;  // e.g. "wine": prefix for every member command
};
int ResumeGroup(const std::string& path, const std::vector<std::string>& command,
                const GroupResumeOverrides& ov, group::CoordinatorOptions co);

}  // namespace ckpt::cli
