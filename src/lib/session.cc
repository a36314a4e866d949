// ckpt::Session: option parsing, variable registry, image writing and
// resuming, stages, triggers (signal/event, timer, safepoint counts) and the
// registration file that `ckpt checkpoint PID` talks to.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "group/member.h"
#include "image/reader.h"
#include "image/writer.h"
#include "lib/program_image.h"
#include "lib/registration.h"
#include "lib/section_io.h"
#include "lib/testing.h"
#include "platform/env.h"
#include "state/compat.h"

namespace ckpt {

namespace lib {
namespace {
platform::Env* g_test_env = nullptr;
}
void SetEnvForTesting(platform::Env* env) {
  g_test_env = env;
}
platform::Env* SessionEnv() {
  return g_test_env != nullptr ? g_test_env : platform::Env::Default();
}
}  // namespace lib

namespace {

constexpr int kBitCheckpoint = 1;
constexpr int kBitExit = 2;
constexpr int kBitResumed = 4;
constexpr int kBitCount = 8;
constexpr int kBitGroup = 16;                               // the group coordinator asked for a checkpoint
constexpr int kBitOutside = platform::kRequestFromOutside;  // with kBitCheckpoint: `ckpt checkpoint` asked
static_assert(kBitOutside == 32, "the trigger's bit must not collide with the session's");
constexpr int kCommitAttempts = 8;  // sequence numbers tried when other writers take them

std::string ProgramName(const std::string& argv0) {
  std::string n = platform::BaseName(argv0);
  if (n.size() > 4) {
    std::string ext = n.substr(n.size() - 4);
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".exe") n.resize(n.size() - 4);
  }
  return n.empty() ? "program" : n;
}

const char* kHelp =
    "ckpt options (removed from the program's arguments; each also read from an environment\n"
    "variable, e.g. CKPT_DIR):\n"
    "  --ckpt-dir DIR        where checkpoint images are written (default: .)\n"
    "  --ckpt-resume PATH    resume from an image file, or from the newest image in a directory;\n"
    "                        'auto' resumes from the newest image in --ckpt-dir if there is one\n"
    "  --ckpt-every SECONDS  write a checkpoint periodically (at the next safepoint)\n"
    "  --ckpt-keep K         keep the newest K images of this program in DIR (default: 2)\n"
    "  --ckpt-codec C        none, zstd or zlib (default: none)\n"
    "  --ckpt-level N        compression level (default: the codec's)\n"
    "  --ckpt-at N           checkpoint at this run's N-th safepoint and continue\n"
    "  --ckpt-stop-at N      checkpoint at this run's N-th safepoint and exit with status 75\n"
    "  --ckpt-name NAME      image name prefix (default: the program's name)\n"
    "  --ckpt-image-mode M   permission bits of new images, octal (default: 0600, owner only)\n"
    "  --ckpt-quiet          no progress messages on stderr\n"
    "  --ckpt-no-listen      ignore `ckpt checkpoint PID` requests\n"
    "  --ckpt-help           show this help and exit\n";

}  // namespace

namespace detail {

#if CKPT_SAFEPOINT_TRAMPOLINE
void ProbeExtendedState();  // safepoint_trampoline.cc
#endif

struct VarEntry {
  std::string name;
  std::unique_ptr<VarBase> var;
  TypeDesc desc;
};

class SessionImpl {
 public:
  SessionImpl(Session* owner, std::atomic<int>* pending) : owner_(owner), pending_(pending) {}

  Session* owner_;
  std::atomic<int>* pending_;
  platform::Env* env_ = lib::SessionEnv();
  Options opt_;
  std::string program_path_;
  std::vector<std::string> program_args_;
  image::CodecId codec_ = image::CodecId::kNone;

  std::vector<VarEntry> vars_;
  std::set<std::string> var_names_;

  // Resume state.
  bool resumed_ = false;
  std::string resume_path_;
  std::unique_ptr<image::ImageReader> reader_;
  std::map<std::string, const image::SectionInfo*> image_vars_;
  std::set<std::string> claimed_;
  double resume_seconds_ = 0;  // time spent reading the image
  std::uint64_t resume_bytes_ = 0;

  // Progress.
  lib::Progress progress_;
  std::vector<std::string> stage_stack_;
  std::set<std::string> stages_done_;
  std::uint64_t safepoints_ = 0;
  std::uint64_t written_ = 0;
  std::uint64_t failures_ = 0;
  std::string last_image_;
  std::string last_error_;
  std::exception_ptr parked_exception_;  // thrown in a safepoint's slow path

  // Triggers.
  bool trigger_installed_ = false;
  std::unique_ptr<lib::Registration> registration_;
  std::thread timer_;
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool timer_stop_ = false;

  // Dependent process group (group/member.h): made at start under `ckpt
  // run`, or on first use of Session::group() otherwise.
  std::unique_ptr<GroupMember> group_;
  std::unique_ptr<Group> group_api_;

  void Say(const std::string& m) const {
    if (!opt_.quiet) std::fprintf(stderr, "ckpt: %s\n", m.c_str());
  }

  [[noreturn]] void Fatal(const std::string& m) {
    if (opt_.throw_on_error) throw Error(m);
    std::fflush(stdout);
    std::fprintf(stderr, "ckpt: error: %s\n", m.c_str());
    std::exit(kExitResumeFailed);
  }

  void ApplyEnv() {
    auto get = [&](const char* n) { return env_->GetEnv(n); };
    if (auto v = get("CKPT_DIR"); !v.empty()) opt_.dir = v;
    if (auto v = get("CKPT_RESUME"); !v.empty()) opt_.resume = v;
    if (auto v = get("CKPT_EVERY"); !v.empty()) opt_.every_seconds = ParseDouble("CKPT_EVERY", v);
    if (auto v = get("CKPT_KEEP"); !v.empty()) opt_.keep = static_cast<int>(ParseUint("CKPT_KEEP", v));
    if (auto v = get("CKPT_CODEC"); !v.empty()) opt_.codec = v;
    if (auto v = get("CKPT_LEVEL"); !v.empty()) opt_.level = static_cast<int>(ParseUint("CKPT_LEVEL", v));
    if (auto v = get("CKPT_AT"); !v.empty()) opt_.at = ParseUint("CKPT_AT", v);
    if (auto v = get("CKPT_STOP_AT"); !v.empty()) opt_.stop_at = ParseUint("CKPT_STOP_AT", v);
    if (auto v = get("CKPT_NAME"); !v.empty()) opt_.name = v;
    if (auto v = get("CKPT_IMAGE_MODE"); !v.empty()) opt_.image_mode = ParseMode("CKPT_IMAGE_MODE", v);
    if (auto v = get("CKPT_QUIET"); !v.empty() && v != "0") opt_.quiet = true;
    if (auto v = get("CKPT_LISTEN"); v == "0") opt_.listen = false;
  }

  std::uint64_t ParseUint(const std::string& what, const std::string& v) {
    char* end = nullptr;
    unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || v[0] == '-') UsageError(what + " wants a whole number, got '" + v + "'");
    return x;
  }
  unsigned ParseMode(const std::string& what, const std::string& v) {
    auto m = platform::ParseFileMode(v);
    if (!m.ok()) UsageError(what + ": " + m.status().message());
    return *m;
  }
  double ParseDouble(const std::string& what, const std::string& v) {
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(x >= 0))
      UsageError(what + " wants a number of seconds, got '" + v + "'");
    return x;
  }
  [[noreturn]] void UsageError(const std::string& m) {
    if (opt_.throw_on_error) throw Error(m);
    std::fprintf(stderr, "ckpt: %s\n%s", m.c_str(), kHelp);
    std::exit(2);
  }

  // Parses and strips --ckpt-* arguments.
  void ParseArgs(int& argc, char** argv) {
    int out = 1;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--") {  // everything after belongs to the program
        for (; i < argc; ++i) argv[out++] = argv[i];
        break;
      }
      if (a.rfind("--ckpt-", 0) != 0) {
        argv[out++] = argv[i];
        continue;
      }
      std::string key = a, val;
      bool has_val = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        key = a.substr(0, eq);
        val = a.substr(eq + 1);
        has_val = true;
      }
      auto need = [&]() -> std::string {
        if (has_val) return val;
        if (i + 1 >= argc) UsageError(key + " needs a value");
        return argv[++i];
      };
      if (key == "--ckpt-help") {
        std::fputs(kHelp, stdout);
        std::exit(0);
      } else if (key == "--ckpt-dir")
        opt_.dir = need();
      else if (key == "--ckpt-resume")
        opt_.resume = need();
      else if (key == "--ckpt-every")
        opt_.every_seconds = ParseDouble(key, need());
      else if (key == "--ckpt-keep")
        opt_.keep = static_cast<int>(ParseUint(key, need()));
      else if (key == "--ckpt-codec")
        opt_.codec = need();
      else if (key == "--ckpt-level")
        opt_.level = static_cast<int>(ParseUint(key, need()));
      else if (key == "--ckpt-at")
        opt_.at = ParseUint(key, need());
      else if (key == "--ckpt-stop-at")
        opt_.stop_at = ParseUint(key, need());
      else if (key == "--ckpt-name")
        opt_.name = need();
      else if (key == "--ckpt-image-mode")
        opt_.image_mode = ParseMode(key, need());
      else if (key == "--ckpt-quiet")
        opt_.quiet = true;
      else if (key == "--ckpt-no-listen")
        opt_.listen = false;
      else
        UsageError("unknown option " + key);
    }
    argv[out] = nullptr;
    argc = out;
  }

  void Start(int argc, char** argv) {
#if CKPT_SAFEPOINT_TRAMPOLINE
    ProbeExtendedState();
#endif
    if (argc > 0 && argv != nullptr && argv[0] != nullptr) {
      program_path_ = argv[0];
      for (int i = 1; i < argc; ++i) program_args_.emplace_back(argv[i]);
    }
    if (opt_.name.empty()) opt_.name = ProgramName(program_path_.empty() ? "program" : program_path_);
    auto c = image::ParseCodec(opt_.codec);
    if (!c)
      UsageError("unknown codec '" + opt_.codec + "' (this build has " + image::AvailableCodecs() + ")");
    if (!image::CodecAvailable(*c)) {
      UsageError("codec " + opt_.codec + " is not available in this build (it has " +
                 image::AvailableCodecs() + ")");
    }
    codec_ = *c;
    if (opt_.image_mode > 0777 || (opt_.image_mode & 0600) != 0600) {
      char m[16];
      std::snprintf(m, sizeof m, "%04o", opt_.image_mode);
      UsageError(std::string("image mode ") + m + " must be from 0600 to 0777 (the owner reads and writes)");
    }
    if (opt_.keep < 1) opt_.keep = 1;
    if (GroupMember::InGroupEnvironment(env_)) {
      MakeGroup();
      opt_.listen = false;  // requests go to the coordinator (`ckpt checkpoint GROUP`)
      if (group_->resuming()) {
        auto src = group_->TakeMemberImage();
        Status st = src.ok() ? TryOpenSource(std::move(src).value()) : src.status();
        if (!st.ok()) Fatal("cannot resume: " + st.message());
      }
    } else if (!opt_.resume.empty()) {
      OpenResume();
    }
    if (opt_.at != 0 || opt_.stop_at != 0) pending_->fetch_or(kBitCount, std::memory_order_relaxed);
    if (opt_.listen) {
      Status st = env_->InstallCheckpointTrigger(pending_);
      if (st.ok()) {
        trigger_installed_ = true;
        registration_ = std::make_unique<lib::Registration>(env_, opt_.name, opt_.dir);
        Status rs = Publish(false);
        if (!rs.ok()) {
          // Not behind --ckpt-quiet: a refused runtime directory may be an attack.
          std::fprintf(stderr, "ckpt: warning: `ckpt checkpoint %lld` will not find this process: %s\n",
                       static_cast<long long>(env_->ProcessId()), rs.message().c_str());
          registration_.reset();
        }
      } else {
        Say("warning: cannot listen for checkpoint requests: " + st.message());
      }
    }
    if (opt_.every_seconds > 0) StartTimer();
  }

  void StartTimer() {
    auto period = std::chrono::duration<double>(opt_.every_seconds);
    timer_ = std::thread([this, period] {
      std::unique_lock<std::mutex> lk(timer_mu_);
      while (!timer_cv_.wait_for(lk, period, [this] { return timer_stop_; })) {
        pending_->fetch_or(kBitCheckpoint, std::memory_order_relaxed);
      }
    });
  }

  void Stop() {
    if (timer_.joinable()) {
      {
        std::lock_guard<std::mutex> lk(timer_mu_);
        timer_stop_ = true;
      }
      timer_cv_.notify_all();
      timer_.join();
    }
    if (trigger_installed_) {
      env_->RemoveCheckpointTrigger();
      trigger_installed_ = false;
    }
    registration_.reset();
  }

  // --- resume ---------------------------------------------------------------
  void OpenResume() {
    std::string path = opt_.resume;
    std::vector<std::string> candidates;
    if (path == "auto") {
      if (!env_->IsDirectory(opt_.dir)) return;  // nothing to resume: fresh start
      auto list = lib::ListImages(env_, opt_.dir, opt_.name);
      if (!list.ok()) Fatal(list.status().message());
      if (list->empty()) return;
      candidates = *list;
    } else if (env_->IsDirectory(path)) {
      auto list = lib::ListImages(env_, path, opt_.name);
      if (!list.ok()) Fatal(list.status().message());
      if (list->empty()) Fatal("no checkpoint images (*.NNNNNN.ckpt) in directory " + path);
      candidates = *list;
    } else {
      candidates.push_back(path);
    }
    std::string errors;
    for (const std::string& c : candidates) {
      Status st = TryOpen(c);
      if (st.ok()) {
        if (!errors.empty()) Say("warning: skipped unusable newer image(s):" + errors);
        return;
      }
      if (candidates.size() == 1) Fatal("cannot resume from " + c + ": " + st.message());
      errors += "\n  " + st.message();
    }
    Fatal("no usable image among " + std::to_string(candidates.size()) + " candidates:" + errors);
  }

  Status TryOpen(const std::string& path) {
    ASSIGN_OR_RETURN(auto src, env_->NewRandomAccessFile(path));
    return TryOpenSource(std::move(src));
  }

  Status TryOpenSource(std::unique_ptr<image::RandomAccessSource> src) {
    auto t0 = std::chrono::steady_clock::now();
    std::string path = src->Name();
    ASSIGN_OR_RETURN(auto reader, image::ImageReader::Open(std::move(src)));
    if (reader->header().kind != image::ImageKind::kProgram) {
      return InvalidArgument(path + " is a " + image::ImageKindName(reader->header().kind) +
                             " image, not a program image");
    }
    const image::SectionInfo* meta = reader->Find(lib::kSectionMeta);
    const image::SectionInfo* prog = reader->Find(lib::kSectionProgress);
    if (meta == nullptr || prog == nullptr) return Corruption(path + ": META or PROGRESS section missing");
    for (const auto& s : reader->sections()) {
      if (s.type > lib::kSectionVar && (s.flags & image::kSectionRequired)) {
        return NotSupported(path + ": section '" + s.name + "' has type " + std::to_string(s.type) +
                            ", unknown to this build (a newer ckpt wrote it)");
      }
    }
    ASSIGN_OR_RETURN(std::string mdata, reader->ReadSection(*meta));
    lib::Meta m;
    RETURN_IF_ERROR(DecodeMeta(mdata, &m).WithContext(path));
    ASSIGN_OR_RETURN(std::string pdata, reader->ReadSection(*prog));
    lib::Progress p;
    RETURN_IF_ERROR(DecodeProgress(pdata, &p).WithContext(path));
    std::map<std::string, const image::SectionInfo*> vars;
    for (const auto& s : reader->sections()) {
      if (s.type == lib::kSectionVar) vars[s.name] = &s;
    }
    progress_ = p;
    stages_done_ = std::set<std::string>(p.stages_done.begin(), p.stages_done.end());
    image_vars_ = std::move(vars);
    reader_ = std::move(reader);
    resumed_ = true;
    resume_path_ = path;
    pending_->fetch_or(kBitResumed, std::memory_order_relaxed);
    resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return Status::Ok();
  }

  void LoadVar(VarEntry& e) {
    auto t0 = std::chrono::steady_clock::now();
    auto it = image_vars_.find(e.name);
    if (it == image_vars_.end()) {
      Fatal("cannot resume from " + resume_path_ + ": the program declares '" + e.name + "' (" +
            e.desc.ToString() + "), which the image does not contain");
    }
    const image::SectionInfo& s = *it->second;
    TypeDesc img;
    if (!ParseTypeDesc(s.attrs, &img)) {
      Fatal("cannot resume from " + resume_path_ + ": variable '" + e.name +
            "' has a malformed type descriptor '" + s.attrs + "'");
    }
    if (!state::Compatible(img, e.desc)) {
      Fatal("cannot resume from " + resume_path_ + ": '" + e.name + "' is " + img.ToString() +
            " in the image, the program declares " + e.desc.ToString());
    }
    auto stream = reader_->OpenSection(s);
    if (!stream.ok()) Fatal("cannot resume: " + stream.status().message());
    lib::SectionReader r(stream->get());
    e.var->Load(r, img);
    if (r.ok() && r.Remaining() != 0) {
      r.Fail(std::to_string(r.Remaining()) + " bytes are left over after decoding it");
    }
    // The section's end marker too, as `ckpt verify` checks it: a damaged
    // image is refused even where the damage is outside the value's bytes.
    if (r.ok()) {
      Status end = (*stream)->Drain();
      if (!end.ok()) r.Fail(end.message());
    }
    if (!r.ok()) {
      Fatal("cannot resume from " + resume_path_ + ": variable '" + e.name + "' (" + img.ToString() +
            "): " + r.error());
    }
    claimed_.insert(e.name);
    resume_bytes_ += s.raw_size;
    resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void FinishResume() {
    std::string unclaimed;
    for (const auto& [name, info] : image_vars_) {
      if (!claimed_.count(name)) unclaimed += (unclaimed.empty() ? "" : ", ") + ("'" + name + "'");
    }
    if (!unclaimed.empty()) {
      Fatal("cannot resume from " + resume_path_ + ": the image holds " + unclaimed +
            " but the program never declared it before its first safepoint");
    }
    reader_.reset();
    char buf[160];
    std::snprintf(buf, sizeof buf, " (checkpoint %llu): %zu variables, %.1f MiB, read in %.3f s",
                  static_cast<unsigned long long>(progress_.seq), claimed_.size(),
                  static_cast<double>(resume_bytes_) / (1 << 20), resume_seconds_);
    Say("resumed from " + resume_path_ + buf);
  }

  // --- checkpoint --------------------------------------------------------------
  Status Publish(bool exited) {
    lib::RegistrationState r;
    r.generation = written_;
    r.failures = failures_;
    r.last_image = last_image_.empty() ? "" : env_->AbsolutePath(last_image_);
    r.last_error = last_error_;
    r.exited = exited;
    return registration_->Publish(r);
  }

  // Writes the image under no name (or a random temporary one) and links it
  // as NAME.SEQ.ckpt only if no other writer (a second run of the program,
  // the same image resumed twice) has taken SEQ meanwhile; then it tries the
  // next number. Nothing is ever replaced.
  Status WriteImage(std::string* out_path) {
    RETURN_IF_ERROR(env_->CreateDirs(opt_.dir));
    env_->RemoveStaleTempFiles(opt_.dir, opt_.name + ".");  // left by killed writers
    std::uint64_t taken = progress_.seq;
    for (int attempt = 0; attempt < kCommitAttempts; ++attempt) {
      std::uint64_t seq = std::max(taken, lib::LatestImageSeq(env_, opt_.dir, opt_.name)) + 1;
      std::string file = lib::ImageFileName(opt_.name, seq);
      std::string final_path = platform::JoinPath(opt_.dir, file);
      ASSIGN_OR_RETURN(auto tmp, env_->NewTempFile(opt_.dir, file, opt_.image_mode));
      RETURN_IF_ERROR(WriteImage(tmp.get(), seq));
      RETURN_IF_ERROR(tmp->Sync());
      ASSIGN_OR_RETURN(bool committed, tmp->Commit(final_path, /*replace=*/false));
      if (!committed) {
        Say("another process wrote " + final_path +
            " at the same time; this checkpoint takes the next number");
        taken = seq;
        continue;
      }
      RETURN_IF_ERROR(env_->SyncDir(opt_.dir));
      progress_.seq = seq;
      *out_path = final_path;
      lib::PruneImages(env_, opt_.dir, opt_.name, opt_.keep);
      return Status::Ok();
    }
    return IoError("other processes wrote images of " + opt_.name + " in " + opt_.dir +
                   " under every number tried (up to " + std::to_string(taken) +
                   ") at the same time; this checkpoint was not written");
  }

  Status WriteImage(image::Sink* sink, std::uint64_t seq) {
    image::WriterOptions wo;
    wo.codec = codec_;
    wo.level = opt_.level;
    image::ImageWriter w(sink, image::ImageKind::kProgram, wo);
    RETURN_IF_ERROR(w.Begin());
    lib::Meta meta = lib::ProducerMeta(env_);
    meta.Set("ckpt.version", kVersion);
    meta.Set("program.name", opt_.name);
    meta.Set("program.path", program_path_);
    std::string args;
    for (std::size_t i = 0; i < program_args_.size(); ++i) {
      if (i) args.push_back('\0');
      args += program_args_[i];
    }
    meta.Set("program.args", args);
    meta.Set("program.argc", std::to_string(program_args_.size()));
    meta.Set("image.seq", std::to_string(seq));
    meta.Set("image.codec", std::string(image::CodecName(codec_)));
    if (resumed_ || progress_.resumes > 0) meta.Set("resumed.from", resume_path_);
    RETURN_IF_ERROR(
        w.BeginSection(lib::kSectionMeta, "meta", "", image::kSectionRequired, image::CodecId::kNone));
    RETURN_IF_ERROR(w.Write(lib::EncodeMeta(meta)));
    RETURN_IF_ERROR(w.EndSection());
    lib::Progress p = progress_;
    p.seq = seq;
    p.stages_done.assign(stages_done_.begin(), stages_done_.end());
    RETURN_IF_ERROR(w.BeginSection(lib::kSectionProgress, "progress", "", image::kSectionRequired,
                                   image::CodecId::kNone));
    RETURN_IF_ERROR(w.Write(lib::EncodeProgress(p)));
    RETURN_IF_ERROR(w.EndSection());
    for (const VarEntry& e : vars_) {
      RETURN_IF_ERROR(w.BeginSection(lib::kSectionVar, e.name, e.desc.ToString()));
      lib::SectionWriter sw(&w);
      e.var->Save(sw);
      RETURN_IF_ERROR(sw.Finish().WithContext("variable '" + e.name + "'"));
      RETURN_IF_ERROR(w.EndSection());
    }
    return w.Finish();
  }

  void MakeGroup() {
    GroupHooks h;
    h.pending = pending_;
    h.bit = kBitGroup;
    h.write_image = [this](image::Sink* sink, std::uint64_t seq) {
      if (reader_) FinishResume();
      progress_.seq = seq;
      return WriteImage(sink, seq);
    };
    h.exit_checkpointed = [this] {
      Say("stopping after the group checkpoint, as asked (exit status " + std::to_string(kExitCheckpointed) +
          ")");
      std::fflush(stdout);
      std::fflush(stderr);
      Stop();
      std::exit(kExitCheckpointed);
    };
    h.say = [this](const std::string& m) { Say(m); };
    h.fatal = [this](const std::string& m) { Fatal(m); };
    group_ = std::make_unique<GroupMember>(env_, std::move(h), program_path_, program_args_);
    group_api_.reset(new Group(group_.get()));
  }

  // `asked_outside`: a `ckpt checkpoint` request is among those served, so
  // after a checkpoint-and-exit the registration stays for it to read.
  Event DoCheckpoint(bool exit_after, bool asked_outside = false) {
    auto t0 = std::chrono::steady_clock::now();
    std::string path;
    Status st = WriteImage(&path);
    if (!st.ok()) {
      ++failures_;
      last_error_ = st.message();
      Say("checkpoint failed (the previous image is untouched): " + st.message());
      if (registration_) Publish(false).IgnoreError();
      return Event::kFailed;
    }
    ++written_;
    last_image_ = path;
    last_error_.clear();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[64];
    std::snprintf(buf, sizeof buf, " in %.3f s", secs);
    Say("checkpoint " + std::to_string(progress_.seq) + " written to " + path + buf);
    if (exit_after) {
      if (registration_ && asked_outside && Publish(true).ok()) registration_->KeepAfterExit();
      Say("stopping after the checkpoint, as asked (exit status " + std::to_string(kExitCheckpointed) + ")");
      std::fflush(stdout);
      std::fflush(stderr);
      Stop();  // removes the registration unless kept above
      std::exit(kExitCheckpointed);
    }
    if (registration_) Publish(false).IgnoreError();
    return Event::kCheckpointed;
  }

  Event Slow() {
    Event result = Event::kNone;
    int p = pending_->load(std::memory_order_relaxed);
    if (p & kBitResumed) {
      pending_->fetch_and(~kBitResumed, std::memory_order_relaxed);
      if (reader_) FinishResume();
      progress_.resumes += 1;
      result = Event::kResumed;
    }
    if (p & kBitCount) {
      ++safepoints_;
      if (opt_.at != 0 && safepoints_ == opt_.at)
        pending_->fetch_or(kBitCheckpoint, std::memory_order_relaxed);
      if (opt_.stop_at != 0 && safepoints_ == opt_.stop_at)
        pending_->fetch_or(kBitCheckpoint | kBitExit, std::memory_order_relaxed);
      if (safepoints_ >= opt_.at && safepoints_ >= opt_.stop_at)
        pending_->fetch_and(~kBitCount, std::memory_order_relaxed);
    }
    if ((p & kBitGroup) && group_) {
      Event e = group_->AtSafepoint();
      if (e != Event::kNone && (e == Event::kFailed || result == Event::kNone)) result = e;
    }
    int req = pending_->fetch_and(~(kBitCheckpoint | kBitExit | kBitOutside), std::memory_order_relaxed);
    if ((req & (kBitCheckpoint | kBitExit)) && group_ && group_->coordinated()) {
      // A member's own trigger: the whole group checkpoints, this member included.
      Event e = group_->AskCheckpoint((req & kBitExit) != 0);
      if (e != Event::kNone && (e == Event::kFailed || result == Event::kNone)) result = e;
    } else if (req & (kBitCheckpoint | kBitExit)) {
      if (reader_) FinishResume();
      Event e = DoCheckpoint((req & kBitExit) != 0, (req & kBitOutside) != 0);
      if (e == Event::kFailed || result == Event::kNone) result = e;
    }
    return result;
  }
};

}  // namespace detail

Session::Session(int& argc, char** argv) : impl_(std::make_unique<detail::SessionImpl>(this, &pending_)) {
  impl_->ApplyEnv();
  impl_->ParseArgs(argc, argv);
  impl_->Start(argc, argv);
}

Session::Session(Options options, int argc, char** argv)
    : impl_(std::make_unique<detail::SessionImpl>(this, &pending_)) {
  impl_->opt_ = std::move(options);
  impl_->Start(argc, argv);
}

Session::~Session() {
  impl_->Stop();
}

void Session::Register(std::string_view name, std::unique_ptr<detail::VarBase> var) {
  std::string n(name);
  if (n.empty()) impl_->Fatal("a variable needs a name");
  if (!impl_->var_names_.insert(n).second) impl_->Fatal("variable '" + n + "' is registered twice");
  detail::VarEntry e{n, std::move(var), {}};
  e.desc = e.var->Describe();
  impl_->vars_.push_back(std::move(e));
  if (impl_->reader_) impl_->LoadVar(impl_->vars_.back());
}

bool Session::StageEnter(std::string_view name) {
  auto& st = impl_->stage_stack_;
  std::string path = st.empty() ? std::string(name) : st.back() + "/" + std::string(name);
  if (impl_->stages_done_.count(path)) return false;
  st.push_back(std::move(path));
  return true;
}

void Session::StageLeave(bool completed) {
  auto& st = impl_->stage_stack_;
  if (st.empty()) return;
  if (completed) impl_->stages_done_.insert(st.back());
  st.pop_back();
}

Event Session::SafepointSlow() {
  return impl_->Slow();
}

void Session::RethrowPending() {
  std::exception_ptr e = impl_->parked_exception_;
  impl_->parked_exception_ = nullptr;
  if (e) std::rethrow_exception(e);
  throw Error("ckpt: internal error: safepoint reported an exception but none was parked");
}

namespace detail {
// Called by the safepoint trampoline: exceptions must not unwind through it.
long SafepointEntry(Session* s) noexcept {
  try {
    return static_cast<long>(s->SafepointSlow());
  } catch (...) {
    s->impl_->parked_exception_ = std::current_exception();
    return -1;
  }
}
}  // namespace detail

Group& Session::group() {
  if (!impl_->group_) impl_->MakeGroup();
  return *impl_->group_api_;
}

Event Session::checkpoint() {
  if (impl_->reader_) impl_->FinishResume();
  return impl_->DoCheckpoint(false);
}

void Session::request_checkpoint(bool exit_after) {
  pending_.fetch_or(kBitCheckpoint | (exit_after ? kBitExit : 0), std::memory_order_relaxed);
}

bool Session::resumed() const {
  return impl_->resumed_;
}
std::uint64_t Session::checkpoints_written() const {
  return impl_->written_;
}
const std::string& Session::last_image() const {
  return impl_->last_image_;
}
const std::string& Session::last_error() const {
  return impl_->last_error_;
}
const Options& Session::options() const {
  return impl_->opt_;
}

}  // namespace ckpt
