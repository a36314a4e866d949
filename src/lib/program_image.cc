#include "lib/program_image.h"

#include <algorithm>
#include <bit>
#include <cstdio>

#include "util/bytes.h"

namespace ckpt::lib {

void Meta::Set(std::string key, std::string value) {
  for (auto& [k, v] : kv) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv.emplace_back(std::move(key), std::move(value));
}

std::string Meta::Get(std::string_view key) const {
  for (const auto& [k, v] : kv) {
    if (k == key) return v;
  }
  return "";
}

std::string EncodeMeta(const Meta& m) {
  std::string out;
  PutVarint(&out, m.kv.size());
  for (const auto& [k, v] : m.kv) {
    PutString(&out, k);
    PutString(&out, v);
  }
  return out;
}

Status DecodeMeta(std::string_view data, Meta* m) {
  ByteReader br(data);
  std::uint64_t n = br.Varint();
  if (!br.ok() || n > data.size()) return Corruption("META section is malformed");
  m->kv.clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string k(br.String());
    std::string v(br.String());
    if (!br.ok()) return Corruption("META section is malformed");
    m->kv.emplace_back(std::move(k), std::move(v));
  }
  if (!br.empty()) return Corruption("META section has trailing bytes");
  return Status::Ok();
}

std::string EncodeProgress(const Progress& p) {
  std::string out;
  PutVarint(&out, p.seq);
  PutVarint(&out, p.resumes);
  PutVarint(&out, p.stages_done.size());
  for (const auto& s : p.stages_done) PutString(&out, s);
  return out;
}

Status DecodeProgress(std::string_view data, Progress* p) {
  ByteReader br(data);
  p->seq = br.Varint();
  p->resumes = br.Varint();
  std::uint64_t n = br.Varint();
  if (!br.ok() || n > data.size()) return Corruption("PROGRESS section is malformed");
  p->stages_done.clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    p->stages_done.emplace_back(br.String());
    if (!br.ok()) return Corruption("PROGRESS section is malformed");
  }
  if (!br.empty()) return Corruption("PROGRESS section has trailing bytes");
  return Status::Ok();
}

std::string CpuName() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__i386__) || defined(_M_IX86)
  return "i686";
#elif defined(__arm__)
  return "arm";
#elif defined(__riscv)
  return "riscv64";
#elif defined(__powerpc64__)
  return "ppc64";
#else
  return "unknown";
#endif
}

std::string PlatformTag() {
#if defined(_WIN32)
  return "windows-" + CpuName();
#else
  return "linux-" + CpuName();
#endif
}

std::string FormatTime(std::int64_t unix_nanos) {
  const std::int64_t ns = unix_nanos;
  std::int64_t secs = ns / 1000000000;
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
  days += 719468;
  std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  std::int64_t doe = days - era * 146097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = yoe + era * 400;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  char buf[96];
  (void)std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ",
                      static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                      static_cast<long long>(rem / 3600), static_cast<long long>((rem / 60) % 60),
                      static_cast<long long>(rem % 60));
  return buf;
}

Meta ProducerMeta(platform::Env* env) {
  Meta m;
  m.Set("producer.os", env->OsName());
  m.Set("producer.cpu", CpuName());
  m.Set("producer.endian", std::endian::native == std::endian::little ? "little" : "big");
  std::string widths =
      "short=" + std::to_string(sizeof(short)) + " int=" + std::to_string(sizeof(int)) +
      " long=" + std::to_string(sizeof(long)) + " long_long=" + std::to_string(sizeof(long long)) +
      " pointer=" + std::to_string(sizeof(void*)) + " size_t=" + std::to_string(sizeof(std::size_t)) +
      " wchar_t=" + std::to_string(sizeof(wchar_t)) + " long_double=" + std::to_string(sizeof(long double));
  m.Set("producer.widths", widths);
#if defined(__clang__)
  m.Set("producer.compiler", std::string("clang ") + __clang_version__);
#elif defined(__GNUC__)
  m.Set("producer.compiler", std::string("gcc ") + __VERSION__);
#else
  m.Set("producer.compiler", "unknown");
#endif
  m.Set("producer.host", env->HostName());
  m.Set("producer.pid", std::to_string(env->ProcessId()));
  std::int64_t now = env->NowNanos();
  m.Set("time", FormatTime(now));
  m.Set("time.ns", std::to_string(now));
  return m;
}

std::vector<std::string> ProgramArgs(const Meta& m) {
  std::vector<std::string> args;
  if (m.Get("program.argc") == "0") return args;
  std::string all = m.Get("program.args");
  for (std::size_t b = 0;;) {
    std::size_t e = all.find('\0', b);
    args.push_back(all.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return args;
}

std::string ImageFileName(const std::string& name, std::uint64_t seq) {
  char buf[32];
  (void)std::snprintf(buf, sizeof buf, "%06llu", static_cast<unsigned long long>(seq));
  return name + "." + buf + ".ckpt";
}

bool ParseImageFileName(const std::string& file, std::string* name, std::uint64_t* seq) {
  const std::string ext = ".ckpt";
  if (file.size() <= ext.size() || file.compare(file.size() - ext.size(), ext.size(), ext) != 0) return false;
  std::string stem = file.substr(0, file.size() - ext.size());
  auto dot = stem.rfind('.');
  if (dot == std::string::npos || dot + 1 >= stem.size()) return false;
  std::uint64_t v = 0;
  for (std::size_t i = dot + 1; i < stem.size(); ++i) {
    if (stem[i] < '0' || stem[i] > '9' || v > 1000000000000ULL) return false;
    v = v * 10 + static_cast<std::uint64_t>(stem[i] - '0');
  }
  *name = stem.substr(0, dot);
  *seq = v;
  return true;
}

Result<std::vector<std::string>> ListImages(platform::Env* env, const std::string& dir,
                                            const std::string& name) {
  ASSIGN_OR_RETURN(auto entries, env->ListDir(dir));
  std::vector<std::pair<std::uint64_t, std::string>> c;
  for (const auto& e : entries) {
    std::string n;
    std::uint64_t seq;
    if (e.is_dir || !ParseImageFileName(e.name, &n, &seq)) continue;
    if (!name.empty() && n != name) continue;
    c.emplace_back(seq, platform::JoinPath(dir, e.name));
  }
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& x : c) out.push_back(std::move(x.second));
  return out;
}

namespace {
// Sequence numbers of NAME's images in `dir`, newest first.
std::vector<std::pair<std::uint64_t, std::string>> SeqsOf(platform::Env* env, const std::string& dir,
                                                          const std::string& name) {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  auto list = ListImages(env, dir, name);
  if (!list.ok()) return out;
  for (const auto& p : *list) {
    std::string n;
    std::uint64_t s;
    if (ParseImageFileName(platform::BaseName(p), &n, &s) && n == name) out.emplace_back(s, p);
  }
  return out;
}
}  // namespace

std::uint64_t LatestImageSeq(platform::Env* env, const std::string& dir, const std::string& name) {
  std::uint64_t best = 0;
  for (const auto& [s, p] : SeqsOf(env, dir, name)) best = std::max(best, s);
  return best;
}

void PruneImages(platform::Env* env, const std::string& dir, const std::string& name, int keep) {
  int kept = 0;
  for (const auto& [s, p] : SeqsOf(env, dir, name)) {
    if (++kept > keep) env->RemoveFile(p).IgnoreError();
  }
}

}  // namespace ckpt::lib
