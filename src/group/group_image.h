// The layout of a group image (ImageKind::kGroup) on the image container:
// META (producer facts, as in program images), GROUP (members: commands and
// pending waits), OBJECTS (the communication objects and their state words),
// one SEGMENT section per shared segment (its bytes, or its typed elements)
// and one MEMBER section per member holding that member's complete program
// image. docs/image-format.md, "Group images (kind 2)", is the specification.
// Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "group/control.h"
#include "image/section_types.h"
#include "util/status.h"

namespace ckpt::group {

// Section types of group images (image/section_types.h).
enum SectionType : std::uint32_t {
  kSectionGroup = image::kSecGroup,
  kSectionObjects = image::kSecObjects,
  kSectionSegment = image::kSecSegment,
  kSectionMember = image::kSecMember,
};

struct MemberRecord {
  std::uint32_t rank = 0;
  std::string platform;             // "linux-x86_64"
  std::string program;              // the member's program path, as it saw it
  std::vector<std::string> args;    // its arguments (ckpt options removed)
  std::vector<std::string> launch;  // the command the coordinator ran
  std::string pending_wait;         // "semaphore full", "barrier sweep" or ""
};

struct GroupRecord {
  std::string name;
  std::uint64_t seq = 0;
  std::uint64_t resumes = 0;
  std::vector<MemberRecord> members;
};
std::string EncodeGroup(const GroupRecord& g);
Status DecodeGroup(std::string_view data, GroupRecord* g);

struct ObjectRecord {
  ObjKind kind = ObjKind::kSemaphore;
  std::string name;
  std::uint32_t creator = 0;
  // segment
  std::uint64_t size = 0;
  std::uint64_t count = 0;  // typed: elements; 0 for bytes
  std::uint64_t base = 0;
  std::string desc;  // typed: element type; "" for bytes
  // semaphore / mutex
  std::uint32_t value = 0;
  std::uint32_t holder = 0;  // mutex: rank + 1
  // barrier
  std::uint32_t parties = 0;
  std::uint32_t arrived = 0;
  std::uint32_t generation = 0;
};
std::string EncodeObjects(const std::vector<ObjectRecord>& objs);
Status DecodeObjects(std::string_view data, std::vector<ObjectRecord>* objs);

// Reads the state of every ready object in a control block.
std::vector<ObjectRecord> SnapshotObjects(ControlBlock* cb);
// Sets a freshly claimed slot's state words from an image record.
void RestoreSlot(Slot* s, const ObjectRecord& r);

std::string MemberSectionName(std::uint32_t rank);

}  // namespace ckpt::group
