// Post-copy migration (`ckpt migrate --lazy`, docs/migration.md): once the
// target's copy runs, the source sends the pages its image only listed
// (engine::DumpOptions::postcopy), in order, and first those a fault on
// the target waits for. Both ends speak over the migration's connection:
// PAGE-REQUEST (target -> source), PAGES and PAGES-END (source -> target),
// then FILLED from the target's receiver. Linux, with the engine only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "net/stream.h"
#include "util/status.h"

namespace ckpt::net {

// The target's side, in its restoring process: an engine::RemotePages over
// the connection's descriptors, which it reads and writes only once
// Enable() was called (the receiver has sent DONE and reads no more).
// Pages that came are kept in the file `spool_file` (re-read from there).
class SourcePages final : public engine::RemotePages {
 public:
  static Result<std::unique_ptr<SourcePages>> Open(int read_fd, int write_fd, const std::string& spool_file,
                                                   std::string describe);
  ~SourcePages() override;
  // The restored processes were let go: from now on a read waits for its
  // pages (before, it fails: nothing may wait for the source while the
  // restore still holds the connection's other end).
  void Released();
  // The connection is this side's from now on: pages are read from it.
  void Enable();
  // It never will be (the receiver went away first): every read fails.
  void Abandon(const Status& why);
  Status Read(std::int32_t pid, std::uint64_t addr, std::size_t size, void* dst) override;
  std::string Describe() const override { return describe_; }
  // Every page the restore needs is in: the source is told to stop (if it
  // has not sent everything yet) and its PAGES-END awaited. An error (the
  // link went away first) means the source may run its copy on: the
  // restore must then undo this one.
  Status AllIn() override;
  // {pages, bytes, requests} for the report.
  nlohmann::json Stats() const;

 private:
  SourcePages() = default;
  struct State;
  std::shared_ptr<State> s_;  // shared with the reading thread
  std::string describe_;
};

// The source's side, in the dump worker after DONE said `lazy`: sends every
// page of `runs` from the frozen processes (engine::ReadMemory), those the
// target asks for first, then PAGES-END, and returns the target's FILLED.
// On an error, *all_sent says whether PAGES-END went out (if not, the
// target cannot have its pages and ends its copy).
struct ServeReport {
  nlohmann::json filled;  // the target's FILLED
  std::uint64_t pages = 0, bytes = 0, requests = 0;
  std::int64_t ns = 0;    // from the first page sent to FILLED
  bool all_sent = false;  // PAGES-END went out
};
Status ServePages(Stream* s, const std::vector<engine::DumpStats::RemoteRun>& runs, int filled_timeout_ms,
                  const std::function<void(std::uint64_t, std::uint64_t)>& progress, ServeReport* report);

}  // namespace ckpt::net
