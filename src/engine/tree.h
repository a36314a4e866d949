// Process trees. Dump: find a process's descendants, freeze every member
// before anything is read, note zombies. Restore: recreate the tree from
// forks of ckpt — each member forks its own children with their PIDs
// (clone3 set_tid), sessions and process groups are set up in two phases,
// zombies exit with their status — before any member is rebuilt.
// Not thread-safe; restore code in the forks runs before any thread exists.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/threads.h"
#include "engine/tree_model.h"
#include "util/status.h"

namespace ckpt::engine {

// Every member of a dumped tree, frozen (alive ones) or noted (zombies).
struct FrozenTree {
  std::vector<Member> members;                         // root first, parents before children
  std::vector<std::unique_ptr<FrozenProcess>> frozen;  // per member; null for zombies
};

// Freezes `root` and, with `descendants`, every process below it. Members
// that appear while freezing are frozen too (their parent is frozen first,
// so the set is final once every member is stopped).
Result<FrozenTree> FreezeTree(pid_t root, bool descendants);

// Restore side: the set-up each member's fork runs before it stops for
// ckpt. `member_main(i)` runs in member i once the tree exists and its
// group is set; it must not return (it reports and pauses).
struct SpawnPlan {
  std::vector<Member> members;
  std::function<void(std::size_t index)> member_main;
};

// The spawned tree: members[i] runs as pids[i] in ckpt's PID namespace.
class SpawnedTree {
 public:
  SpawnedTree() = default;
  SpawnedTree(const SpawnedTree&) = delete;
  SpawnedTree& operator=(const SpawnedTree&) = delete;
  ~SpawnedTree();  // kills every member unless Release() was called
  std::vector<pid_t> pids;
  void Release() { released_ = true; }
  void KillAll();

 private:
  bool released_ = false;
};

// Forks the tree: the root with clone3(set_tid) from ckpt (in the current
// PID namespace), every other member from its parent. `status_fd` receives
// one line per event from the members: "C PID" created, then whatever
// member_main writes. Waits until every member reported "C", releases them
// to set their process groups, and returns their PIDs.
Status SpawnTree(const SpawnPlan& plan, int status_fd, int status_read_fd, SpawnedTree* out);

}  // namespace ckpt::engine
