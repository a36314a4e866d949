// ckpt inspect IMAGE [--json] [--values] [--no-verify]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ckpt/serialize.hpp"
#include "command.h"
#include "image/codec.h"
#include "image/section_types.h"
#include "inspect_process.h"
#include "lib/program_image.h"
#include "lib/section_io.h"
#include "state/value_walk.h"

namespace ckpt::cli {

namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
  bool values = false;
  bool no_verify = false;
};

std::string Args(const std::string& nul_joined) {
  std::string out;
  std::size_t b = 0;
  if (nul_joined.empty()) return out;
  while (true) {
    std::size_t e = nul_joined.find('\0', b);
    std::string a = nul_joined.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!out.empty()) out += ' ';
    out += a.find(' ') == std::string::npos && !a.empty() ? a : "'" + a + "'";
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return out;
}

std::string RenderValue(const image::ImageReader& r, const image::SectionInfo& s, Status* st) {
  TypeDesc d;
  if (!ParseTypeDesc(s.attrs, &d)) {
    *st = Corruption("variable '" + s.name + "' has a malformed type descriptor");
    return "";
  }
  auto stream = r.OpenSection(s);
  if (!stream.ok()) {
    *st = stream.status();
    return "";
  }
  lib::SectionReader sr(stream->get());
  std::string out;
  state::WalkValue(sr, d, &out, 160);
  if (!sr.ok()) *st = Corruption("variable '" + s.name + "': " + sr.error());
  return out;
}

int Run(const InspectOptions& o) {
  std::string path;
  auto opened = OpenImage(o.path, &path);
  if (!opened.ok()) return ReportError(opened.status());
  const image::ImageReader& r = **opened;
  const auto& h = r.header();
  nlohmann::ordered_json j;
  j["path"] = path;
  j["size"] = r.source().Size();
  j["format"] = {{"major", h.major}, {"minor", h.minor}};
  j["kind"] = image::ImageKindName(h.kind);

  lib::Meta meta;
  lib::Progress progress;
  bool is_program = h.kind == image::ImageKind::kProgram;
  if (const auto* ms = r.Find(lib::kSectionMeta); ms != nullptr) {
    auto data = r.ReadSection(*ms);
    if (!data.ok()) return ReportError(data.status());
    Status st = lib::DecodeMeta(*data, &meta);
    if (!st.ok()) return ReportError(st.WithContext(path));
    nlohmann::ordered_json mj;
    for (const auto& [k, v] : meta.kv) {
      if (k == "program.args") {
        std::vector<std::string> args;
        std::size_t b = 0;
        while (!v.empty()) {
          std::size_t e = v.find('\0', b);
          args.push_back(v.substr(b, e == std::string::npos ? std::string::npos : e - b));
          if (e == std::string::npos) break;
          b = e + 1;
        }
        mj[k] = args;
      } else {
        mj[k] = v;
      }
    }
    j["meta"] = mj;
  }
  if (is_program) {
    if (const auto* ps = r.Find(lib::kSectionProgress); ps != nullptr) {
      auto data = r.ReadSection(*ps);
      if (!data.ok()) return ReportError(data.status());
      Status st = lib::DecodeProgress(*data, &progress);
      if (!st.ok()) return ReportError(st.WithContext(path));
      j["progress"] = {
          {"checkpoint", progress.seq}, {"resumes", progress.resumes}, {"stages_done", progress.stages_done}};
    }
  }
  bool is_process = h.kind == image::ImageKind::kProcess;
  if (is_process) {
    Status ps = DescribeProcessImage(r, &j);
    if (!ps.ok()) return ReportError(ps.WithContext(path));
  }
  Status value_status;
  nlohmann::ordered_json vars = nlohmann::ordered_json::array();
  nlohmann::ordered_json secs = nlohmann::ordered_json::array();
  std::uint64_t state_bytes = 0;
  for (const auto& s : r.sections()) {
    secs.push_back({{"type", s.type},
                    {"type_name", std::string(image::SectionTypeName(s.type))},
                    {"name", s.name},
                    {"codec", image::CodecName(s.codec)},
                    {"offset", s.offset},
                    {"raw_bytes", s.raw_size},
                    {"stored_bytes", s.stored_size},
                    {"frames", s.frames}});
    if (is_program && s.type == lib::kSectionVar) {
      nlohmann::ordered_json v = {{"name", s.name},
                                  {"type", s.attrs},
                                  {"raw_bytes", s.raw_size},
                                  {"stored_bytes", s.stored_size},
                                  {"codec", image::CodecName(s.codec)}};
      state_bytes += s.raw_size;
      if (o.values) {
        Status st;
        std::string val = RenderValue(r, s, &st);
        if (st.ok())
          v["value"] = val;
        else if (value_status.ok())
          value_status = st;
      }
      vars.push_back(v);
    }
  }
  if (is_program) j["variables"] = vars;
  if (is_program) {
    nlohmann::ordered_json objs;
    if (Status st = InspectSoloObjects(r, &objs); !st.ok()) return ReportError(st.WithContext(path));
    if (!objs.is_null()) j["group_objects"] = objs;  // a group of one's objects
  }
  if (h.kind == image::ImageKind::kGroup) {
    nlohmann::ordered_json g;
    Status st = InspectGroup(r, &g);
    if (!st.ok()) return ReportError(st.WithContext(path));
    j["group"] = g;
  }
  j["sections"] = secs;
  Status verify;
  if (!o.no_verify) {
    verify = r.VerifyAll();
    j["checksums"] = verify.ok() ? "ok" : verify.message();
  } else {
    j["checksums"] = "not verified";
  }
  if (!value_status.ok()) j["value_error"] = value_status.message();

  if (o.json) {
    PrintJson(j);
  } else {
    PrintText("image       %s (%s)\n", path.c_str(), HumanBytes(r.source().Size()).c_str());
    PrintText("format      %u.%u, %s image\n", h.major, h.minor, image::ImageKindName(h.kind));
    if (!meta.kv.empty()) {
      PrintText("producer    %s %s, %s-endian, %s\n", meta.Get("producer.os").c_str(),
                meta.Get("producer.cpu").c_str(), meta.Get("producer.endian").c_str(),
                meta.Get("producer.compiler").c_str());
      PrintText("widths      %s\n", meta.Get("producer.widths").c_str());
      PrintText("written     %s on host %s by pid %s\n", meta.Get("time").c_str(),
                meta.Get("producer.host").c_str(), meta.Get("producer.pid").c_str());
      if (!meta.Get("program.name").empty()) {
        PrintText("program     %s (%s)%s%s\n", meta.Get("program.name").c_str(),
                  meta.Get("program.path").c_str(),
                  meta.Get("program.args").empty() ? "" : " args: ", Args(meta.Get("program.args")).c_str());
      }
    }
    if (is_program) {
      PrintText("checkpoint  %llu (the computation was resumed %llu times before)\n",
                static_cast<unsigned long long>(progress.seq),
                static_cast<unsigned long long>(progress.resumes));
      std::string stages;
      for (const auto& s : progress.stages_done) stages += (stages.empty() ? "" : ", ") + s;
      PrintText("stages done %s\n", stages.empty() ? "(none)" : stages.c_str());
      PrintText("variables   %zu, %s of state\n", vars.size(), HumanBytes(state_bytes).c_str());
      std::size_t wname = 4, wtype = 4;
      for (const auto& v : vars) {
        wname = std::max(wname, v["name"].get<std::string>().size());
        wtype = std::max(wtype, std::min<std::size_t>(48, v["type"].get<std::string>().size()));
      }
      PrintText("  %-*s  %-*s  %12s  %12s  %s\n", static_cast<int>(wname), "NAME", static_cast<int>(wtype),
                "TYPE", "SIZE", "STORED", "CODEC");
      for (const auto& v : vars) {
        std::string type = v["type"].get<std::string>();
        if (type.size() > 48) type = type.substr(0, 45) + "...";
        PrintText("  %-*s  %-*s  %12s  %12s  %s\n", static_cast<int>(wname),
                  v["name"].get<std::string>().c_str(), static_cast<int>(wtype), type.c_str(),
                  HumanBytes(v["raw_bytes"].get<std::uint64_t>()).c_str(),
                  HumanBytes(v["stored_bytes"].get<std::uint64_t>()).c_str(),
                  v["codec"].get<std::string>().c_str());
        if (v.contains("value")) PrintText("      = %s\n", v["value"].get<std::string>().c_str());
      }
      if (j.contains("group_objects")) {
        std::printf("group objects (a group of one)\n");
        PrintGroupObjects(j["group_objects"]);
      }
    } else if (is_process) {
      PrintProcessImage(j);
    } else {
      if (j.contains("group")) PrintGroup(j["group"]);
      PrintText("sections    %zu\n", r.sections().size());
      for (const auto& s : r.sections()) {
        PrintText("  %-6u %-32s %12s  %12s  %s\n", s.type, s.name.c_str(), HumanBytes(s.raw_size).c_str(),
                  HumanBytes(s.stored_size).c_str(), std::string(image::CodecName(s.codec)).c_str());
      }
    }
    if (o.no_verify)
      PrintText("checksums   not verified (--no-verify)\n");
    else
      PrintText("checksums   %s\n", verify.ok() ? "ok" : ("FAILED: " + verify.message()).c_str());
  }
  if (!verify.ok()) return ReportError(verify);
  if (!value_status.ok()) return ReportError(value_status);
  return kExitOk;
}

}  // namespace

void AddInspect(CLI::App& app, Runner* run) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* c = app.add_subcommand(
      "inspect", "Show what an image holds: producer, variables, sections; verify checksums");
  c->add_option("image", o->path, "Image file, or a directory (its newest image)")->required();
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->add_flag("--values", o->values, "Also decode and show each variable's value (abbreviated)");
  c->add_flag("--no-verify", o->no_verify, "Skip reading every frame to verify checksums");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
