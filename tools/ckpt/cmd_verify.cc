// ckpt verify IMAGE... [--json]: every checksum, and every variable decodes.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ckpt/serialize.hpp"
#include "command.h"
#include "lib/program_image.h"
#include "lib/section_io.h"
#include "state/value_walk.h"

namespace ckpt::cli {

namespace {

struct VerifyOptions {
  std::vector<std::string> paths;
  bool json = false;
  bool quiet = false;
};

Status VerifyOne(const std::string& path, std::string* resolved, std::size_t* nsec, std::size_t* nvar) {
  ASSIGN_OR_RETURN(auto r, OpenImage(path, resolved));
  RETURN_IF_ERROR(r->VerifyAll());
  *nsec = r->sections().size();
  *nvar = 0;
  if (r->header().kind == image::ImageKind::kProgram) {
    const auto* ms = r->Find(lib::kSectionMeta);
    const auto* ps = r->Find(lib::kSectionProgress);
    if (ms == nullptr || ps == nullptr) return Corruption(*resolved + ": META or PROGRESS section missing");
    ASSIGN_OR_RETURN(std::string md, r->ReadSection(*ms));
    lib::Meta meta;
    RETURN_IF_ERROR(lib::DecodeMeta(md, &meta).WithContext(*resolved));
    ASSIGN_OR_RETURN(std::string pd, r->ReadSection(*ps));
    lib::Progress p;
    RETURN_IF_ERROR(lib::DecodeProgress(pd, &p).WithContext(*resolved));
    for (const auto& s : r->sections()) {
      if (s.type != lib::kSectionVar) continue;
      TypeDesc d;
      if (!ParseTypeDesc(s.attrs, &d))
        return Corruption(*resolved + ": variable '" + s.name + "' has a malformed type descriptor");
      ASSIGN_OR_RETURN(auto stream, r->OpenSection(s));
      lib::SectionReader sr(stream.get());
      state::WalkValue(sr, d, nullptr, 0);
      if (sr.ok() && sr.Remaining() != 0) sr.Fail(std::to_string(sr.Remaining()) + " bytes left over");
      if (!sr.ok())
        return Corruption(*resolved + ": variable '" + s.name + "' (" + s.attrs + "): " + sr.error());
      ++*nvar;
    }
  }
  return Status::Ok();
}

int Run(const VerifyOptions& o) {
  int worst = kExitOk;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& p : o.paths) {
    std::string resolved = p;
    std::size_t nsec = 0, nvar = 0;
    Status st = VerifyOne(p, &resolved, &nsec, &nvar);
    if (o.json) {
      out.push_back({{"path", resolved},
                     {"ok", st.ok()},
                     {"sections", nsec},
                     {"variables", nvar},
                     {"error", st.ok() ? "" : st.message()}});
    } else if (st.ok()) {
      if (!o.quiet)
        PrintText("OK    %s: %zu sections, %zu variables; checksums and values verified\n", resolved.c_str(),
                  nsec, nvar);
    } else {
      PrintText("BAD   %s: %s\n", resolved.c_str(), st.message().c_str());
    }
    if (!st.ok() && worst == kExitOk) worst = ExitCodeFor(st);
  }
  if (o.json) PrintJson(out);
  return worst;
}

}  // namespace

void AddVerify(CLI::App& app, Runner* run) {
  auto o = std::make_shared<VerifyOptions>();
  CLI::App* c =
      app.add_subcommand("verify", "Check images completely: every checksum, every variable decodes");
  c->add_option("images", o->paths, "Image files or directories")->required();
  c->add_flag("--json", o->json, "Print machine-readable JSON");
  c->add_flag("-q,--quiet", o->quiet, "Print only failures");
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
