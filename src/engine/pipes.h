// Pipes between members of a tree (or inside one process): a pipe whose
// read and write ends are both in the dumped processes is "internal"; its
// buffered bytes are stored once (blob "pipe.INODE") and at restore ckpt
// creates it once, refills it and hands its ends to every member that had
// them. Pipes that a process outside the dumped set holds too are refused
// at dump (precheck.cc) or, with --external-pipes, reattached through a
// live holder (files.cc). Not thread-safe.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/files.h"
#include "engine/model.h"
#include "image/reader.h"
#include "util/status.h"

namespace ckpt::engine {

// The blob holding the bytes buffered in FIFO `fr` ("fifo.DEV.INO").
std::string FifoBlobName(const FileRef& fr);

// Marks internal pipes in every member's descriptors and stores the bytes
// buffered in each, once, as blobs. models[i] belongs to process pids[i].
// A pipe is internal unless a process outside the members holds it too
// (`external`, from the census of precheck.h): then it is reattached at
// restore. An internal pipe whose other end nobody holds any more is
// recreated with that end closed.
Status DumpPipes(const std::vector<pid_t>& pids, const std::vector<ProcessModel*>& models,
                 const std::set<std::uint64_t>& external, std::vector<Blob>* blobs);

// The internal pipes of an image, created in ckpt.
class PipeTable {
 public:
  PipeTable() = default;
  PipeTable(const PipeTable&) = delete;
  PipeTable& operator=(const PipeTable&) = delete;
  ~PipeTable();
  // A ckpt descriptor of the wanted end of internal pipe `f.pipe_ino`
  // (created and refilled from the image on first use). Owned by the table.
  Result<int> End(const Fd& f, const image::ImageReader& r);
  // Closes ckpt's ends: once the members hold theirs, a pipe must reach
  // end-of-file when they close them.
  void CloseAll();

 private:
  std::map<std::uint64_t, std::pair<int, int>> pipes_;  // inode -> (read, write)
};

}  // namespace ckpt::engine
