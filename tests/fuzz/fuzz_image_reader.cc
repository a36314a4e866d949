// libFuzzer target: arbitrary bytes through the image reader, the program
// image sections, the descriptor-driven value decoder and the process image
// model's tagged sections. Anything but a clean Status is a bug (crash,
// hang, sanitizer report, huge allocation).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ckpt/serialize.hpp"
#include "engine/model.h"
#include "engine/model_codec.h"
#include "engine/tree_model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "lib/program_image.h"
#include "lib/section_io.h"
#include "state/compat.h"
#include "state/value_walk.h"

// Inputs starting with 'T' bypass the checksums (which stop most mutations
// early): "T<type descriptor>\n<value bytes>" goes straight to the parser and
// the value decoder.
static void FuzzValue(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  if (nl == std::string_view::npos) return;
  ckpt::TypeDesc d;
  if (!ckpt::ParseTypeDesc(in.substr(1, nl - 1), &d)) return;
  (void)d.ToString();
  ckpt::StringReader r(in.substr(nl + 1));
  std::string out;
  ckpt::state::WalkValue(r, d, &out, 200);
}

// The same bytes read as an image still arriving (ImageReader::OpenStreamed):
// sections in file order through open-ended streams, then the table check.
static void FuzzStreamed(const std::string& bytes) {
  using namespace ckpt;
  auto r = image::ImageReader::OpenStreamed(std::make_unique<image::StringSource>(bytes, "fuzz"),
                                            bytes.size() + 64);
  if (!r.ok()) return;
  for (int i = 0; i < 64; ++i) {
    auto s = (*r)->NextSection();
    if (!s.ok() || *s == nullptr) break;
    auto stream = (*r)->OpenSection(**s);
    if (!stream.ok()) break;
    TypeDesc d;
    if (ParseTypeDesc((*s)->attrs, &d)) {
      lib::SectionReader sr(stream->get());
      std::string out;
      state::WalkValue(sr, d, &out, 200);
      sr.FinishSection();
    } else {
      (void)(*stream)->Drain();
    }
  }
  (void)(*r)->Finish();
}

// Inputs starting with 'M' test the process image model past the
// checksums: "M<selector><payload>" — a small valid process image whose
// section number `selector` (of those written below) holds the payload,
// read as a whole (ReadModel, ReadTreeModel); and the payload through each
// resource section decoder directly.
static void FuzzModel(const std::uint8_t* data, std::size_t size) {
  using namespace ckpt;
  using namespace ckpt::engine;
  if (size < 2) return;
  std::string_view payload(reinterpret_cast<const char*>(data) + 2, size - 2);
  ProcessModel m;
  m.core.pid = 1;
  m.core.comm = "fuzz";
  ThreadState t;
  t.tid = 1;
  m.threads = {t};
  m.vmas = {{0x400000, 0x401000, 5, 0, 0, -1, VmaKind::kAnon, ""}};
  m.fds = {{0, FdKind::kDevice, 2, 0, -1}};
  m.files.emplace_back();
  m.files[0].path = "/dev/null";
  m.fds[0].file = 0;
  m.pagemap = {{0x400000, 1}};
  m.creds.recorded = true;
  TreeModel tree;
  tree.members = {{1, 0, 1, 1, false, 0}};
  std::vector<std::pair<std::uint32_t, std::pair<std::string, std::string>>> sections = {
      {kSecCore, {"core", EncodeCore(m.core)}},
      {kSecThread, {"thread.1", EncodeThread(m.threads[0])}},
      {kSecFiles, {"files", EncodeFiles(m.files)}},
      {kSecVmas, {"vmas", EncodeVmas(m.vmas)}},
      {kSecFds, {"fds", EncodeFds(m.fds)}},
      {kSecSignals, {"signals", EncodeSignals(m.signals)}},
      {kSecCreds, {"creds", EncodeCreds(m.creds)}},
      {kSecPagemap, {"pagemap", EncodePagemap(m.pagemap)}},
      {kSecTree, {"tree", EncodeTree(tree.members)}},
      {kSecShmObjects, {"shm", EncodeShmObjects(tree)}},
      {kSecSysvSem, {"sysv.sem", EncodeSemSets(tree)}},
      {kSecSysvMsg, {"sysv.msg", EncodeMsgQueues(tree.queues)}},
      {kSecVdso, {"vdso", ""}},
  };
  sections[data[1] % (sections.size() - 1)].second.second = std::string(payload);
  image::StringSink sink;
  image::ImageWriter w(&sink, image::ImageKind::kProcess);
  if (!w.Begin().ok()) return;
  for (const auto& [type, s] : sections) {
    if (!w.AddSection(type, s.first, "", s.second).ok()) return;
  }
  if (!w.AddSection(kSecPages, "pages", "", std::string(4096, '\0')).ok() || !w.Finish().ok()) return;
  auto r = image::ImageReader::Open(std::make_unique<image::StringSource>(sink.buffer(), "fuzz"));
  if (!r.ok()) return;
  (void)ReadModel(**r);
  bool is_tree = false;
  (void)ReadTreeModel(**r, &is_tree);
  std::vector<EventFile> ev;
  std::vector<FileLock> locks;
  std::vector<PosixTimer> timers;
  std::vector<UnixSocket> socks, external;
  std::vector<InetSocket> inet;
  std::vector<UnixListener> listeners;
  (void)DecodeEvents(payload, &ev);
  (void)DecodeLocks(payload, &locks);
  (void)DecodePosixTimers(payload, &timers);
  (void)DecodeSockets(payload, &socks);
  (void)DecodeUnixExternal(payload, &external);
  (void)DecodeUnixListeners(payload, &listeners);
  (void)DecodeInetSockets(payload, &inet);
  (void)DecodeConnections(payload, &inet);
  (void)DecodePagemapSection(payload);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ckpt;
  if (size > 0 && data[0] == 'T') {
    FuzzValue(data, size);
    return 0;
  }
  if (size > 0 && data[0] == 'M') {
    FuzzModel(data, size);
    return 0;
  }
  std::string bytes(reinterpret_cast<const char*>(data), size);
  FuzzStreamed(bytes);
  auto src = std::make_unique<image::StringSource>(std::move(bytes), "fuzz");
  auto r = image::ImageReader::Open(std::move(src));
  if (!r.ok()) return 0;
  (void)(*r)->VerifyAll();
  for (const auto& s : (*r)->sections()) {
    auto stream = (*r)->OpenSection(s);
    if (!stream.ok()) continue;
    if (s.type == lib::kSectionMeta || s.type == lib::kSectionProgress) {
      auto all = (*stream)->ReadAll();
      if (!all.ok()) continue;
      lib::Meta m;
      lib::Progress p;
      (void)lib::DecodeMeta(*all, &m);
      (void)lib::DecodeProgress(*all, &p);
      continue;
    }
    TypeDesc d;
    if (!ParseTypeDesc(s.attrs, &d)) continue;
    (void)state::Compatible(d, d);
    lib::SectionReader sr(stream->get());
    std::string out;
    state::WalkValue(sr, d, &out, 200);
  }
  return 0;
}
