// ckpt convert IMAGE --codec C [-o OUT]: re-encode every section's frames.
#include <cstdio>
#include <vector>

#include "command.h"
#include "image/codec.h"
#include "image/writer.h"

namespace ckpt::cli {

namespace {

struct ConvertOptions {
  std::string path;
  std::string out;
  std::string codec;
  int level = 0;
  bool quiet = false;
  unsigned image_mode = platform::kDefaultImageMode;
};

constexpr std::uint64_t kSmallSection = 4096;  // stays uncompressed: readable by any build

Status Convert(const ConvertOptions& o, std::string* in_path, std::string* out_path, std::uint64_t* in_size,
               std::uint64_t* out_size) {
  auto codec = image::ParseCodec(o.codec);
  if (!codec) return InvalidArgument("unknown codec '" + o.codec + "' (known: none, zstd, zlib)");
  if (!image::CodecAvailable(*codec))
    return NotSupported("codec " + o.codec + " is not available in this build (it has " +
                        image::AvailableCodecs() + ")");
  ASSIGN_OR_RETURN(auto r, OpenImage(o.path, in_path));
  *out_path = o.out.empty() ? *in_path : o.out;
  platform::Env* env = platform::Env::Default();
  // A new file (never a link, never an existing file), renamed over OUT.
  auto file_or = env->NewTempFile(platform::DirName(*out_path), platform::BaseName(*out_path), o.image_mode);
  if (!file_or.ok()) return file_or.status();
  auto file = std::move(file_or).value();
  image::WriterOptions wo;
  wo.codec = *codec;
  wo.level = o.level;
  image::ImageWriter w(file.get(), r->header().kind, wo);
  auto body = [&]() -> Status {
    RETURN_IF_ERROR(w.Begin());
    std::vector<unsigned char> buf(4u << 20);
    for (const auto& s : r->sections()) {
      image::CodecId c = s.raw_size < kSmallSection ? image::CodecId::kNone : *codec;
      RETURN_IF_ERROR(w.BeginSection(s.type, s.name, s.attrs, s.flags, c));
      ASSIGN_OR_RETURN(auto in, r->OpenSection(s));
      while (in->remaining() > 0) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), in->remaining()));
        RETURN_IF_ERROR(in->Read(buf.data(), n));
        RETURN_IF_ERROR(w.Write(buf.data(), n));
      }
      RETURN_IF_ERROR(in->Drain());
      RETURN_IF_ERROR(w.EndSection());
    }
    RETURN_IF_ERROR(w.Finish());
    return file->Sync();
  };
  Status st = body();
  *out_size = file->Position();
  if (st.ok()) st = file->Commit(*out_path, /*replace=*/true).status();
  if (!st.ok()) return st;  // `file` removes the unfinished copy
  *in_size = r->source().Size();
  return env->SyncDir(platform::DirName(*out_path));
}

int Run(const ConvertOptions& o) {
  std::string in, out;
  std::uint64_t in_size = 0, out_size = 0;
  Status st = Convert(o, &in, &out, &in_size, &out_size);
  if (!st.ok()) return ReportError(st);
  if (!o.quiet)
    std::printf("converted %s (%s) -> %s (%s, codec %s)\n", in.c_str(), HumanBytes(in_size).c_str(),
                out.c_str(), HumanBytes(out_size).c_str(), o.codec.c_str());
  return kExitOk;
}

}  // namespace

void AddConvert(CLI::App& app, Runner* run) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* c = app.add_subcommand("convert", "Re-encode an image with another codec (none, zstd, zlib)");
  c->add_option("image", o->path, "Image file, or a directory (its newest image)")->required();
  c->add_option("--codec", o->codec, "Target codec: none, zstd or zlib")->required();
  c->add_option("--level", o->level, "Compression level (default: the codec's)");
  c->add_option("-o,--output", o->out, "Write here instead of replacing the image in place");
  c->add_flag("-q,--quiet", o->quiet, "No summary line");
  AddImageModeOption(c, &o->image_mode);
  c->callback([run, o] { *run = [o] { return Run(*o); }; });
}

}  // namespace ckpt::cli
