#include "engine/creds.h"

#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/securebits.h>
#include <sys/syscall.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "engine/proc.h"
#include "engine/ptrace.h"

namespace ckpt::engine {

namespace {

// The numbers of one "Uid:"-style line.
std::vector<std::uint64_t> Numbers(const std::string& v, int base) {
  std::vector<std::uint64_t> out;
  std::istringstream in(v);
  std::string w;
  while (in >> w) out.push_back(std::strtoull(w.c_str(), nullptr, base));
  return out;
}

// Thread `inj` runs prctl(option, arg); an error names `what`.
Status Prctl(Injector* inj, const std::string& what, std::uint64_t option, std::uint64_t arg) {
  return inj->Call(what, SYS_prctl, {option, arg, 0, 0, 0}).status();
}

Status Capset(Injector* inj, std::uint64_t inh, std::uint64_t prm, std::uint64_t eff) {
  std::uint32_t data[8] = {_LINUX_CAPABILITY_VERSION_3,
                           0,  // header: version, pid (0: this thread)
                           static_cast<std::uint32_t>(eff),
                           static_cast<std::uint32_t>(prm),
                           static_cast<std::uint32_t>(inh),
                           static_cast<std::uint32_t>(eff >> 32),
                           static_cast<std::uint32_t>(prm >> 32),
                           static_cast<std::uint32_t>(inh >> 32)};
  ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(0, data, sizeof data));
  return inj->Call("capset", SYS_capset, {at, at + 8}).status();
}

Result<std::uint32_t> Securebits(Injector* inj) {
  ASSIGN_OR_RETURN(std::uint64_t bits,
                   inj->Call("prctl(PR_GET_SECUREBITS)", SYS_prctl, {PR_GET_SECUREBITS, 0, 0, 0, 0}));
  return static_cast<std::uint32_t>(bits);
}

std::string Hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

// Moves thread `inj` from credentials `cur` to `want`, in an order the
// kernel allows: what needs privileges (bounding set, groups, gids) first,
// the uids with the capabilities kept, then ambient set, securebits and
// the final capability sets.
Status Apply(Injector* inj, const ThreadCreds& cur, const ThreadCreds& want) {
  RETURN_IF_ERROR(Capset(inj, want.cap_inh, cur.cap_prm, cur.cap_eff));
  for (int cap = 0; cap < 64; ++cap) {
    std::uint64_t bit = 1ull << cap;
    if ((cur.cap_bnd & bit) != 0 && (want.cap_bnd & bit) == 0) {
      RETURN_IF_ERROR(Prctl(inj, "prctl(PR_CAPBSET_DROP, " + std::to_string(cap) + ")", PR_CAPBSET_DROP,
                            static_cast<std::uint64_t>(cap)));
    }
  }
  if (cur.groups != want.groups) {
    ASSIGN_OR_RETURN(std::uint64_t at,
                     inj->PutScratch(0, want.groups.data(), want.groups.size() * sizeof(std::uint32_t)));
    RETURN_IF_ERROR(inj->Call("setgroups", SYS_setgroups, {want.groups.size(), at}).status());
  }
  if (cur.gid != want.gid) {
    RETURN_IF_ERROR(inj->Call("setresgid", SYS_setresgid, {want.gid[0], want.gid[1], want.gid[2]}).status());
    (void)inj->Raw(SYS_setfsgid, {want.gid[3]});  // returns the old fsgid, never an error
  }
  std::uint32_t bits = cur.securebits;
  if (cur.uid != want.uid) {
    // Keep the permitted capabilities across the change of uid: the sets
    // are set explicitly below.
    if ((bits & SECBIT_KEEP_CAPS) == 0) {
      RETURN_IF_ERROR(Prctl(inj, "prctl(PR_SET_KEEPCAPS)", PR_SET_KEEPCAPS, 1));
      bits |= SECBIT_KEEP_CAPS;
    }
    RETURN_IF_ERROR(inj->Call("setresuid", SYS_setresuid, {want.uid[0], want.uid[1], want.uid[2]}).status());
    (void)inj->Raw(SYS_setfsuid, {want.uid[3]});
  }
  // The permitted set as it is now, effective: what follows may need it.
  RETURN_IF_ERROR(Capset(inj, want.cap_inh, cur.cap_prm, cur.cap_prm));
  if (cur.cap_amb != want.cap_amb) {
    RETURN_IF_ERROR(Prctl(inj, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
    for (int cap = 0; cap < 64; ++cap) {
      if ((want.cap_amb & (1ull << cap)) == 0) continue;
      RETURN_IF_ERROR(inj->Call("prctl(PR_CAP_AMBIENT_RAISE, " + std::to_string(cap) + ")", SYS_prctl,
                                {PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, static_cast<std::uint64_t>(cap), 0, 0})
                          .status());
    }
  }
  if (bits != want.securebits) {
    RETURN_IF_ERROR(Prctl(inj, "prctl(PR_SET_SECUREBITS)", PR_SET_SECUREBITS, want.securebits));
  }
  RETURN_IF_ERROR(Capset(inj, want.cap_inh, want.cap_prm, want.cap_eff));
  if (want.no_new_privs && !cur.no_new_privs) {
    RETURN_IF_ERROR(Prctl(inj, "prctl(PR_SET_NO_NEW_PRIVS)", PR_SET_NO_NEW_PRIVS, 1));
  }
  return Status::Ok();
}

// The capabilities of `want` that a thread with `cur` (a fork of ckpt) can
// be given: never more than ckpt has (its bounding and permitted sets). A
// process is never restored with more privileges than recorded; with
// fewer when ckpt has fewer (e.g. a container without CAP_SYS_RESOURCE).
ThreadCreds Grantable(const ThreadCreds& want, const ThreadCreds& cur) {
  constexpr int kCapSetpcap = 8;
  ThreadCreds g = want;
  g.cap_bnd &= cur.cap_bnd;
  g.cap_prm &= cur.cap_prm;
  std::uint64_t inh_limit = cur.cap_inh | cur.cap_bnd;
  if ((cur.cap_eff & (1ull << kCapSetpcap)) == 0) inh_limit &= cur.cap_inh | cur.cap_prm;
  g.cap_inh &= inh_limit;
  g.cap_eff &= g.cap_prm;
  g.cap_amb &= g.cap_prm & g.cap_inh;
  return g;
}

}  // namespace

Result<ThreadCreds> ReadThreadCreds(pid_t pid, pid_t tid) {
  ASSIGN_OR_RETURN(std::string s, ReadProcFile(pid, "task/" + std::to_string(tid) + "/status"));
  s.insert(0, "\n");
  ThreadCreds c;
  c.tid = tid;
  auto uid = Numbers(TextField(s, "Uid"), 10), gid = Numbers(TextField(s, "Gid"), 10);
  if (uid.size() != 4 || gid.size() != 4) {
    return Corruption("cannot read the credentials of thread " + std::to_string(tid) + " from " +
                      ProcPath(pid, "task/" + std::to_string(tid) + "/status"));
  }
  for (int i = 0; i < 4; ++i) {
    c.uid[i] = static_cast<std::uint32_t>(uid[i]);
    c.gid[i] = static_cast<std::uint32_t>(gid[i]);
  }
  for (std::uint64_t g : Numbers(TextField(s, "Groups"), 10))
    c.groups.push_back(static_cast<std::uint32_t>(g));
  std::uint64_t* caps[] = {&c.cap_inh, &c.cap_prm, &c.cap_eff, &c.cap_bnd, &c.cap_amb};
  const char* names[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
  for (int i = 0; i < 5; ++i) {
    auto v = Numbers(TextField(s, names[i]), 16);
    *caps[i] = v.empty() ? 0 : v[0];
  }
  auto nnp = Numbers(TextField(s, "NoNewPrivs"), 10);
  c.no_new_privs = !nnp.empty() && nnp[0] != 0;
  return c;
}

Status DumpCreds(FrozenProcess& p, std::uint64_t gadget, Creds* out) {
  out->recorded = true;
  for (auto& ft : p.threads()) {
    ASSIGN_OR_RETURN(ThreadCreds c, ReadThreadCreds(p.pid(), ft.tid));
    Injector inj(ft.tid, gadget);
    RETURN_IF_ERROR(inj.Save());
    auto bits = Securebits(&inj);
    Result<std::uint64_t> dumpable = std::uint64_t{1};
    if (ft.tid == p.pid()) {
      dumpable = inj.Call("prctl(PR_GET_DUMPABLE)", SYS_prctl, {PR_GET_DUMPABLE, 0, 0, 0, 0});
    }
    RETURN_IF_ERROR(inj.Restore());
    RETURN_IF_ERROR(bits.status());
    RETURN_IF_ERROR(dumpable.status());
    c.securebits = *bits;
    if (ft.tid == p.pid()) out->dumpable = static_cast<std::uint32_t>(*dumpable);
    out->threads.push_back(std::move(c));
  }
  return Status::Ok();
}

Status RestoreCreds(const ProcessModel& m, pid_t pid, const std::vector<pid_t>& tids, std::uint64_t gadget,
                    std::string* warnings) {
  if (!m.creds.recorded) return Status::Ok();
  for (std::size_t i = 0; i < m.threads.size() && i < tids.size(); ++i) {
    const ThreadCreds* rec = nullptr;
    for (const auto& c : m.creds.threads) {
      if (c.tid == m.threads[i].tid) rec = &c;
    }
    if (rec == nullptr)
      return Corruption("the image has no credentials for thread " + std::to_string(m.threads[i].tid));
    ThreadCreds want = *rec;
    want.tid = tids[i];
    Injector inj(tids[i], gadget);
    RETURN_IF_ERROR(inj.Save());
    Status st = [&]() -> Status {
      ASSIGN_OR_RETURN(ThreadCreds cur, ReadThreadCreds(pid, tids[i]));
      ASSIGN_OR_RETURN(cur.securebits, Securebits(&inj));
      ThreadCreds can = Grantable(want, cur);
      std::uint64_t lost = (want.cap_bnd & ~can.cap_bnd) | (want.cap_prm & ~can.cap_prm) |
                           (want.cap_inh & ~can.cap_inh) | (want.cap_eff & ~can.cap_eff) |
                           (want.cap_amb & ~can.cap_amb);
      if (lost != 0) {
        *warnings += "thread " + std::to_string(m.threads[i].tid) + " runs without capabilities " +
                     Hex(lost) + " it had: ckpt cannot grant them here\n";
      }
      want = can;
      if (cur == want) return Status::Ok();
      RETURN_IF_ERROR(Apply(&inj, cur, want));
      // What the kernel shows now must be what the image says.
      ASSIGN_OR_RETURN(ThreadCreds now, ReadThreadCreds(pid, tids[i]));
      ASSIGN_OR_RETURN(now.securebits, Securebits(&inj));
      if (!(now == want)) {
        return Internal("thread has " + DescribeCreds(now) + " instead of " + DescribeCreds(want));
      }
      return Status::Ok();
    }();
    Status rs = inj.Restore();
    RETURN_IF_ERROR(st.WithContext("giving thread " + std::to_string(m.threads[i].tid) +
                                   " its recorded credentials (" + DescribeCreds(*rec) +
                                   "; restoring another user's process needs root)"));
    RETURN_IF_ERROR(rs);
  }
  // Changing credentials made the process non-dumpable; the image says.
  if (m.creds.dumpable <= 1 && !tids.empty()) {
    Injector inj(tids[0], gadget);
    RETURN_IF_ERROR(inj.Save());
    Status st = Prctl(&inj, "prctl(PR_SET_DUMPABLE)", PR_SET_DUMPABLE, m.creds.dumpable);
    RETURN_IF_ERROR(inj.Restore());
    RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

std::string DescribeCreds(const ThreadCreds& c) {
  std::string s = "uid " + std::to_string(c.uid[0]);
  if (c.uid[1] != c.uid[0] || c.uid[2] != c.uid[0] || c.uid[3] != c.uid[0]) {
    s += "/" + std::to_string(c.uid[1]) + "/" + std::to_string(c.uid[2]) + "/" + std::to_string(c.uid[3]);
  }
  s += " gid " + std::to_string(c.gid[0]);
  if (c.gid[1] != c.gid[0] || c.gid[2] != c.gid[0] || c.gid[3] != c.gid[0]) {
    s += "/" + std::to_string(c.gid[1]) + "/" + std::to_string(c.gid[2]) + "/" + std::to_string(c.gid[3]);
  }
  s += " groups";
  if (c.groups.empty()) s += " none";
  for (std::uint32_t g : c.groups) s += " " + std::to_string(g);
  s += ", capabilities effective " + Hex(c.cap_eff) + " permitted " + Hex(c.cap_prm) + " inheritable " +
       Hex(c.cap_inh) + " bounding " + Hex(c.cap_bnd) + " ambient " + Hex(c.cap_amb);
  if (c.securebits != 0) s += ", securebits " + std::to_string(c.securebits);
  if (c.no_new_privs) s += ", no_new_privs";
  return s;
}

}  // namespace ckpt::engine
