// The group part of `ckpt inspect`: members (platform, command, pending
// wait) and communication objects (segments, semaphore counts, barriers).
#include <cstdio>

#include "command.h"
#include "group/group_image.h"

namespace ckpt::cli {

Status InspectGroup(const image::ImageReader& r, nlohmann::ordered_json* out) {
  const image::SectionInfo* gs = r.Find(group::kSectionGroup);
  const image::SectionInfo* os = r.Find(group::kSectionObjects);
  if (gs == nullptr || os == nullptr)
    return Corruption(r.source().Name() + ": GROUP or OBJECTS section missing");
  ASSIGN_OR_RETURN(std::string gdata, r.ReadSection(*gs));
  group::GroupRecord g;
  RETURN_IF_ERROR(group::DecodeGroup(gdata, &g));
  ASSIGN_OR_RETURN(std::string odata, r.ReadSection(*os));
  std::vector<group::ObjectRecord> objs;
  RETURN_IF_ERROR(group::DecodeObjects(odata, &objs));
  nlohmann::ordered_json j;
  j["name"] = g.name;
  j["checkpoint"] = g.seq;
  j["resumes"] = g.resumes;
  nlohmann::ordered_json members = nlohmann::ordered_json::array();
  for (const auto& m : g.members) {
    members.push_back({{"rank", m.rank},
                       {"platform", m.platform},
                       {"program", m.program},
                       {"args", m.args},
                       {"launch", m.launch},
                       {"pending_wait", m.pending_wait}});
  }
  j["members"] = members;
  nlohmann::ordered_json objects = nlohmann::ordered_json::array();
  for (const auto& o : objs) {
    nlohmann::ordered_json x = {
        {"kind", group::ObjKindName(o.kind)}, {"name", o.name}, {"creator", o.creator}};
    switch (o.kind) {
      case group::ObjKind::kSegment:
        x["bytes"] = o.size;
        x["elements"] = o.count;
        x["type"] = o.desc.empty() ? "bytes" : o.desc;
        x["base"] = o.base;
        break;
      case group::ObjKind::kSemaphore:
        x["value"] = o.value;
        break;
      case group::ObjKind::kBarrier:
        x["parties"] = o.parties;
        x["arrived"] = o.arrived;
        x["generation"] = o.generation;
        break;
      case group::ObjKind::kMutex:
        x["value"] = o.value;
        x["holder"] = o.holder;
        break;
    }
    objects.push_back(x);
  }
  j["objects"] = objects;
  *out = j;
  return Status::Ok();
}

void PrintGroup(const nlohmann::ordered_json& g) {
  PrintText("group       %s, checkpoint %llu (resumed %llu times before)\n",
            g["name"].get<std::string>().c_str(),
            static_cast<unsigned long long>(g["checkpoint"].get<std::uint64_t>()),
            static_cast<unsigned long long>(g["resumes"].get<std::uint64_t>()));
  for (const auto& m : g["members"]) {
    std::string w = m["pending_wait"].get<std::string>();
    PrintText("  member %-3llu %-16s %s%s\n", static_cast<unsigned long long>(m["rank"].get<std::uint64_t>()),
              m["platform"].get<std::string>().c_str(), m["program"].get<std::string>().c_str(),
              w.empty() ? "" : ("   [waiting: " + w + "]").c_str());
  }
  for (const auto& o : g["objects"]) {
    std::string kind = o["kind"].get<std::string>(), detail;
    if (kind == "segment") {
      detail = HumanBytes(o["bytes"].get<std::uint64_t>()) + ", " + o["type"].get<std::string>();
      if (o["base"].get<std::uint64_t>() != 0) {
        char b[40];
        std::snprintf(b, sizeof b, ", at 0x%llx",
                      static_cast<unsigned long long>(o["base"].get<std::uint64_t>()));
        detail += b;
      }
    } else if (kind == "semaphore") {
      detail = "count " + std::to_string(o["value"].get<std::uint64_t>());
    } else if (kind == "barrier") {
      detail = std::to_string(o["arrived"].get<std::uint64_t>()) + " of " +
               std::to_string(o["parties"].get<std::uint64_t>()) + " arrived, generation " +
               std::to_string(o["generation"].get<std::uint64_t>());
    } else {
      detail = o["value"].get<std::uint64_t>() ? "free" : "held";
    }
    PrintText("  %-9s %-24s %s\n", kind.c_str(), o["name"].get<std::string>().c_str(), detail.c_str());
  }
}

}  // namespace ckpt::cli
