#include "engine/vdso.h"

#include <elf.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

namespace ckpt::engine {

namespace {

struct Region {
  std::string name;
  std::uint64_t start, end;
};

std::vector<Region> ImageRegions(const ProcessModel& m) {
  std::vector<Region> out;
  for (const auto& v : m.vmas) {
    if (v.kind == VmaKind::kVdso || v.kind == VmaKind::kVvar) out.push_back({v.name, v.start, v.end});
  }
  return out;
}

std::vector<Region> ChildRegions(const std::vector<MapsEntry>& maps) {
  std::vector<Region> out;
  for (const auto& e : maps) {
    if (e.path == "[vdso]" || e.path.compare(0, 5, "[vvar") == 0) out.push_back({e.path, e.start, e.end});
  }
  return out;
}

const Region* Find(const std::vector<Region>& rs, const char* name) {
  for (const auto& r : rs) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

bool Overlaps(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
  return a < d && c < b;
}

// A free range of `size` bytes, away from the image's VMAs and `avoid`.
std::uint64_t FindFree(const ProcessModel& m, std::uint64_t size, const std::vector<Region>& avoid,
                       std::uint64_t near) {
  std::uint64_t cand = near > (1ull << 32) ? near - (1ull << 30) : 0x200000000ull;
  for (int i = 0; i < 1 << 16; ++i, cand -= (size + 0x100000) & ~0xfffull) {
    bool clash = false;
    for (const auto& v : m.vmas) clash = clash || Overlaps(cand, cand + size, v.start, v.end);
    for (const auto& r : avoid) clash = clash || Overlaps(cand, cand + size, r.start, r.end);
    if (!clash && cand > 0x10000000ull) return cand;
  }
  return 0;
}

Status MoveGroup(Injector* inj, const std::vector<Region>& from, std::int64_t delta) {
  for (const auto& r : from) {
    std::uint64_t to = r.start + delta;
    ASSIGN_OR_RETURN(std::uint64_t got, inj->Call("mremap " + r.name, SYS_mremap,
                                                  {r.start, r.end - r.start, r.end - r.start,
                                                   MREMAP_MAYMOVE | MREMAP_FIXED, to}));
    if (got != to) return Internal("mremap " + r.name + " landed at the wrong address");
  }
  return Status::Ok();
}

}  // namespace

Status DumpVdso(pid_t pid, const std::vector<Vma>& vmas, std::string* bytes) {
  for (const auto& v : vmas) {
    if (v.kind != VmaKind::kVdso) continue;
    bytes->assign(v.size(), '\0');
    return ReadMemory(pid, v.start, bytes->data(), bytes->size());
  }
  bytes->clear();
  return Status::Ok();
}

std::vector<std::pair<std::string, std::uint64_t>> VdsoSymbols(const std::string& img) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  if (img.size() < sizeof(Elf64_Ehdr) || std::memcmp(img.data(), ELFMAG, SELFMAG) != 0) return out;
  Elf64_Ehdr eh;
  std::memcpy(&eh, img.data(), sizeof eh);
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff + eh.e_shnum * sizeof(Elf64_Shdr) > img.size())
    return out;
  auto sh = [&](int i) {
    Elf64_Shdr s;
    std::memcpy(&s, img.data() + eh.e_shoff + i * sizeof s, sizeof s);
    return s;
  };
  std::uint64_t load_vaddr = 0;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (eh.e_phoff + (i + 1) * sizeof ph > img.size()) break;
    std::memcpy(&ph, img.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD) {
      load_vaddr = ph.p_vaddr - ph.p_offset;
      break;
    }
  }
  for (int i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr s = sh(i);
    if (s.sh_type != SHT_DYNSYM || s.sh_link >= eh.e_shnum) continue;
    Elf64_Shdr str = sh(static_cast<int>(s.sh_link));
    if (s.sh_offset + s.sh_size > img.size() || str.sh_offset + str.sh_size > img.size()) return out;
    for (std::uint64_t o = 0; o + sizeof(Elf64_Sym) <= s.sh_size; o += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, img.data() + s.sh_offset + o, sizeof sym);
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_name >= str.sh_size)
        continue;
      const char* n = img.data() + str.sh_offset + sym.st_name;
      std::size_t len = strnlen(n, str.sh_size - sym.st_name);
      out.emplace_back(std::string(n, len), sym.st_value - load_vaddr);
    }
  }
  return out;
}

Result<VdsoPlan> RestoreVdso(const ProcessModel& m, Injector* inj, pid_t pid,
                             const std::vector<MapsEntry>& child_maps, bool force_proxy) {
  VdsoPlan plan;
  std::vector<Region> want = ImageRegions(m);
  std::vector<Region> have = ChildRegions(child_maps);
  const Region* want_vdso = Find(want, "[vdso]");
  const Region* have_vdso = Find(have, "[vdso]");
  if (want_vdso == nullptr) {
    // The dumped process had no vDSO: keep the kernel's one out of its way.
    if (have.empty()) return plan;
    std::uint64_t lo = have.front().start, hi = have.back().end;
    bool clash = false;
    for (const auto& v : m.vmas) clash = clash || Overlaps(lo, hi, v.start, v.end);
    if (!clash) return plan;
    std::uint64_t to = FindFree(m, hi - lo, have, lo);
    if (to == 0) return Internal("no free address range for the vDSO");
    RETURN_IF_ERROR(MoveGroup(inj, have, static_cast<std::int64_t>(to - lo)));
    return plan;
  }
  if (have_vdso == nullptr) return NotSupported("this kernel gives the restore process no vDSO");

  // Same kernel vDSO and the same layout of regions around it?
  std::string here(have_vdso->end - have_vdso->start, '\0');
  RETURN_IF_ERROR(ReadMemory(pid, have_vdso->start, here.data(), here.size()));
  bool same = !force_proxy && here == m.vdso && want.size() == have.size();
  for (std::size_t i = 0; same && i < want.size(); ++i) {
    same = want[i].name == have[i].name && want[i].end - want[i].start == have[i].end - have[i].start &&
           want[i].start - want_vdso->start == have[i].start - have_vdso->start;
  }
  std::uint64_t have_lo = have.front().start, have_hi = have.back().end;
  if (same) {
    std::int64_t delta = static_cast<std::int64_t>(want_vdso->start - have_vdso->start);
    if (delta == 0) return plan;
    if (Overlaps(have_lo, have_hi, have_lo + delta, have_hi + delta)) {
      // Move through a free place first: mremap cannot overlap itself.
      std::uint64_t tmp = FindFree(m, have_hi - have_lo, have, have_lo);
      if (tmp == 0) return Internal("no free address range to move the vDSO through");
      RETURN_IF_ERROR(MoveGroup(inj, have, static_cast<std::int64_t>(tmp - have_lo)));
      std::vector<Region> moved = have;
      for (auto& r : moved) {
        r.start += tmp - have_lo;
        r.end += tmp - have_lo;
      }
      return MoveGroup(inj, moved,
                       static_cast<std::int64_t>(want_vdso->start - (have_vdso->start + tmp - have_lo)))
                     .ok()
                 ? Result<VdsoPlan>(plan)
                 : Result<VdsoPlan>(Internal("moving the vDSO into place failed"));
    }
    RETURN_IF_ERROR(MoveGroup(inj, have, delta));
    return plan;
  }

  // Proxy: the kernel's vDSO goes to a free place near the old one; the old
  // address gets the old bytes with each function redirected.
  plan.proxy = true;
  std::vector<Region> avoid = have;
  std::uint64_t to = FindFree(m, have_hi - have_lo, avoid, want_vdso->start);
  if (to == 0) return Internal("no free address range for the vDSO");
  bool clash = false;
  for (const auto& v : m.vmas) clash = clash || Overlaps(have_lo, have_hi, v.start, v.end);
  std::uint64_t new_vdso = have_vdso->start;
  if (clash) {
    RETURN_IF_ERROR(MoveGroup(inj, have, static_cast<std::int64_t>(to - have_lo)));
    new_vdso = have_vdso->start + (to - have_lo);
  }
  auto old_syms = VdsoSymbols(m.vdso);
  auto new_syms = VdsoSymbols(here);
  if (old_syms.empty())
    return NotSupported("the image's vDSO has no readable symbol table; cannot build a proxy");
  std::map<std::string, std::uint64_t> by_name(new_syms.begin(), new_syms.end());
  std::string proxy = m.vdso;
  for (const auto& [name, off] : old_syms) {
    auto it = by_name.find(name);
    if (off + 12 > proxy.size()) continue;
    unsigned char* p = reinterpret_cast<unsigned char*>(proxy.data() + off);
    if (it == by_name.end()) {
      p[0] = 0x0f;  // ud2: a function the new kernel lacks must not run old code
      p[1] = 0x0b;
      continue;
    }
    std::uint64_t target = new_vdso + it->second;
    std::int64_t rel = static_cast<std::int64_t>(target - (want_vdso->start + off + 5));
    if (rel >= INT32_MIN && rel <= INT32_MAX) {
      p[0] = 0xe9;  // jmp rel32: 5 bytes, fits the shortest function
      std::int32_t r32 = static_cast<std::int32_t>(rel);
      std::memcpy(p + 1, &r32, 4);
    } else {
      p[0] = 0x48;  // movabs rax, target; jmp rax
      p[1] = 0xb8;
      std::memcpy(p + 2, &target, 8);
      p[10] = 0xff;
      p[11] = 0xe0;
    }
  }
  const Vma* vv = nullptr;
  for (const auto& v : m.vmas) {
    if (v.kind == VmaKind::kVdso) vv = &v;
  }
  ASSIGN_OR_RETURN(std::uint64_t got, inj->Call("mmap vDSO proxy", SYS_mmap,
                                                {vv->start, vv->size(), PROT_READ | PROT_WRITE,
                                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                                 static_cast<std::uint64_t>(-1), 0}));
  if (got != vv->start) return Internal("vDSO proxy landed at the wrong address");
  RETURN_IF_ERROR(WriteMemory(pid, vv->start, proxy.data(), proxy.size()));
  RETURN_IF_ERROR(
      inj->Call("mprotect vDSO proxy", SYS_mprotect, {vv->start, vv->size(), PROT_READ | PROT_EXEC})
          .status());
  return plan;
}

}  // namespace ckpt::engine
