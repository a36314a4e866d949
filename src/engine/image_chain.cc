#include "engine/image_chain.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "engine/model.h"
#include "platform/env.h"
#include "platform/secure.h"
#include "util/bytes.h"

namespace ckpt::engine {

Result<ImageId> NewImageId() {
  ImageId id;
  RETURN_IF_ERROR(platform::RandomBytes(id.data(), id.size()));
  return id;
}

std::string ImageIdText(const ImageId& id) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : id) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

Result<bool> ReadIdentity(const image::ImageReader& r, ImageId* id) {
  const image::SectionInfo* s = r.Find(kSecIdentity, "identity");
  if (s == nullptr) return false;
  ASSIGN_OR_RETURN(std::string data, r.ReadSection(*s));
  if (data.size() != id->size()) return Corruption(r.source().Name() + ": malformed section 'identity'");
  std::copy(data.begin(), data.end(), id->begin());
  return true;
}

Result<bool> ReadParentLink(const image::ImageReader& r, ImageId* id, std::string* path) {
  const image::SectionInfo* s = r.Find(kSecParent, "parent");
  if (s == nullptr) return false;
  ASSIGN_OR_RETURN(std::string data, r.ReadSection(*s));
  const std::string bad = r.source().Name() + ": malformed section 'parent'";
  if (data.size() <= id->size() || static_cast<std::uint8_t>(data[0]) != kChainVersion)
    return Corruption(bad);
  std::copy(data.begin() + 1, data.begin() + 1 + static_cast<std::ptrdiff_t>(id->size()), id->begin());
  ByteReader b(std::string_view(data).substr(1 + id->size()));
  *path = std::string(b.String());
  if (!b.ok() || !b.empty() || path->empty()) return Corruption(bad);
  return true;
}

std::string ParentDir(const std::string& child_dir, const std::string& path) {
  std::filesystem::path p(path);
  return (p.is_absolute() ? p : std::filesystem::path(child_dir) / p).lexically_normal().string();
}

Result<std::vector<std::string>> ChainPaths(const std::string& dir, const image::ImageReader& r) {
  std::vector<std::string> out;
  ImageId id{};
  std::string rel, cur = dir, named_by = r.source().Name();
  ASSIGN_OR_RETURN(bool has, ReadParentLink(r, &id, &rel));
  std::set<std::string> seen;
  while (has) {
    if (!seen.insert(ImageIdText(id)).second) return Corruption(named_by + ": the chain of parents loops");
    cur = ParentDir(cur, rel);
    std::string path = platform::JoinPath(cur, kImageFileName);
    auto src = platform::Env::Default()->NewRandomAccessFile(path);
    if (!src.ok()) return NotFound("the parent image " + path + " (named by " + named_by + ") is missing");
    ASSIGN_OR_RETURN(auto pr, image::ImageReader::Open(std::move(src).value()));
    ImageId got{};
    ASSIGN_OR_RETURN(bool has_id, ReadIdentity(*pr, &got));
    if (!has_id || got != id)
      return FailedPrecondition(path + " is not the parent image " + named_by + " was dumped against");
    out.push_back(path);
    named_by = path;
    ASSIGN_OR_RETURN(has, ReadParentLink(*pr, &id, &rel));
  }
  return out;
}

}  // namespace ckpt::engine
