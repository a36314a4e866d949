// `ckpt resume GROUP-IMAGE`: restart every member of a group image under a
// new coordinator; the members recreate segments and semaphores from the
// image and resume. Commands come from the image, or from --spec, --bindir
// (+ --launcher) or `-- PROGRAM ARGS` when the group moves to another OS.
#include <cstdio>
#include <sstream>

#include "command.h"
#include "group/coordinator.h"
#include "group/group_image.h"
#include "group/spec.h"
#include "util/text.h"

namespace ckpt::cli {

namespace {

std::string ProgramBase(const std::string& path) {
  std::string b = platform::BaseName(path);
  if (b.size() > 4) {
    std::string ext = b.substr(b.size() - 4);
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".exe") b.resize(b.size() - 4);
  }
  return b;
}

}  // namespace

int ResumeGroup(const std::string& path, const std::vector<std::string>& command,
                const GroupResumeOverrides& ov, group::CoordinatorOptions co) {
  platform::Env* env = platform::Env::Default();
  std::string resolved;
  auto r = OpenImage(path, &resolved);
  if (!r.ok()) return ReportError(r.status());
  const image::SectionInfo* gs = (*r)->Find(group::kSectionGroup);
  if (gs == nullptr) return ReportError(Corruption(resolved + ": GROUP section missing"));
  auto data = (*r)->ReadSection(*gs);
  if (!data.ok()) return ReportError(data.status());
  group::GroupRecord g;
  if (Status st = group::DecodeGroup(*data, &g); !st.ok()) return ReportError(st.WithContext(resolved));
  r->reset();

  std::vector<std::vector<std::string>> launches;
  if (!ov.spec.empty()) {
    auto text = platform::ReadFileToString(env, ov.spec);
    if (!text.ok()) return ReportError(text.status());
    auto parsed = group::ParseSpec(*text);
    if (!parsed.ok()) return ReportError(parsed.status().WithContext(ov.spec));
    launches = std::move(parsed).value();
  } else {
    for (const auto& m : g.members) {
      std::vector<std::string> argv;
      if (!command.empty()) {
        argv = command;
      } else if (!ov.bindir.empty()) {
        argv = SplitWords(ov.launcher);
        std::string base = platform::JoinPath(ov.bindir, ProgramBase(m.program));
        argv.push_back(env->FileExists(base + ".exe") ? base + ".exe" : base);
        argv.insert(argv.end(), m.args.begin(), m.args.end());
      } else {
        argv = m.launch;
        if (!ov.launcher.empty()) {
          auto l = SplitWords(ov.launcher);
          argv.insert(argv.begin(), l.begin(), l.end());
        }
      }
      launches.push_back(std::move(argv));
    }
  }
  if (launches.size() != g.members.size())
    return ReportError(InvalidArgument(resolved + " holds " + std::to_string(g.members.size()) +
                                       " members; " + std::to_string(launches.size()) +
                                       " commands were given"));
  if (co.name.empty()) co.name = g.name;
  if (co.dir.empty()) co.dir = platform::DirName(resolved);
  co.resume = resolved;
  return group::RunGroup(env, co, launches);
}

}  // namespace ckpt::cli
