// The process-image (kind 3) part of `ckpt inspect`: threads, the memory
// map with sizes, descriptors.
#include "inspect_process.h"

#include <cstdio>
#include <filesystem>

#include "command.h"
#include "engine/image_chain.h"
#include "engine/model.h"
#include "engine/sock_names.h"
#include "engine/tree_model.h"

namespace ckpt::cli {

namespace {

std::string Prot(std::uint32_t p, bool shared) {
  std::string s = "---p";
  if (p & 1) s[0] = 'r';
  if (p & 2) s[1] = 'w';
  if (p & 4) s[2] = 'x';
  if (shared) s[3] = 's';
  return s;
}

// Bytes of the image's pages inside [start, end).
std::uint64_t StoredIn(const std::vector<engine::PageRun>& runs, std::uint64_t start, std::uint64_t end) {
  std::uint64_t n = 0;
  for (const auto& r : runs) {
    std::uint64_t a = std::max(r.addr, start), b = std::min(r.addr + r.pages * 4096, end);
    if (a < b) n += b - a;
  }
  return n;
}

// An incremental image's identity, parent and chain (engine/incremental.h);
// the root's inherited pages into `*inherited`.
Status DescribeChain(const image::ImageReader& r, const engine::TreeModel& t, nlohmann::ordered_json* j,
                     std::uint64_t* inherited) {
  engine::ImageId id{};
  ASSIGN_OR_RETURN(bool has_id, engine::ReadIdentity(r, &id));
  if (has_id) (*j)["identity"] = engine::ImageIdText(id);
  std::string rel;
  ASSIGN_OR_RETURN(bool has_parent, engine::ReadParentLink(r, &id, &rel));
  if (!has_parent) return Status::Ok();
  nlohmann::ordered_json p = {{"path", rel}, {"identity", engine::ImageIdText(id)}};
  const image::SectionInfo* s =
      r.Find(engine::kSecInherited, engine::SectionPrefix(t, t.members[0].pid) + "inherited");
  if (s != nullptr) {
    ASSIGN_OR_RETURN(std::string data, r.ReadSection(*s));
    ASSIGN_OR_RETURN(auto runs, engine::DecodePagemapSection(data));
    *inherited = engine::PagemapPages(runs) * 4096;
  }
  std::string dir = std::filesystem::path(r.source().Name()).parent_path().string();
  auto chain = engine::ChainPaths(dir.empty() ? "." : dir, r);
  if (chain.ok()) {
    p["chain"] = *chain;
  } else {
    p["chain_error"] = chain.status().message();
  }
  (*j)["parent"] = p;
  return Status::Ok();
}

}  // namespace

namespace {

// An event file's state, and a one-line summary of it.
// A socket's options beyond its kind's own, its multicast groups, its filter.
void AddExtras(const engine::SockExtras& x, nlohmann::ordered_json* e) {
  if (!x.options.empty()) {
    auto& o = (*e)["options"] = nlohmann::ordered_json::array();
    for (const auto& v : x.options) o.push_back(engine::SockOptName(v.level, v.name));
  }
  if (!x.groups.empty()) {
    auto& g = (*e)["multicast"] = nlohmann::ordered_json::array();
    for (const auto& v : x.groups) g.push_back(engine::McastGroupText(v));
  }
  if (!x.filter.empty()) {
    (*e)["filter_insns"] = x.filter.size() / 8;
    if (x.filter_locked) (*e)["filter_locked"] = true;
  }
}

nlohmann::ordered_json EventJson(const engine::EventFile& ev) {
  nlohmann::ordered_json e = {{"type", engine::EventKindName(ev.kind)}, {"object", ev.object}};
  std::string summary = engine::EventKindName(ev.kind);
  switch (ev.kind) {
    case engine::EventKind::kEventfd:
      e["count"] = ev.count;
      e["semaphore"] = ev.semaphore;
      summary += " count " + std::to_string(ev.count) + (ev.semaphore ? " (semaphore)" : "");
      break;
    case engine::EventKind::kSignalfd:
      e["sigmask"] = ev.sigmask;
      summary += " mask " + engine::HexAddr(ev.sigmask);
      break;
    case engine::EventKind::kTimerfd:
      e["clockid"] = ev.clockid;
      e["value_ns"] = ev.value_ns;
      e["interval_ns"] = ev.interval_ns;
      e["unread_expirations"] = ev.count;
      if (ev.wall_ns != 0) e["wall_ns"] = ev.wall_ns;
      summary +=
          " clock " + std::to_string(ev.clockid) + ", " +
          (ev.value_ns == 0 ? std::string("disarmed") : std::to_string(ev.value_ns / 1000000) + " ms left") +
          (ev.interval_ns != 0 ? ", every " + std::to_string(ev.interval_ns / 1000000) + " ms" : "") +
          (ev.count != 0 ? ", " + std::to_string(ev.count) + " unread" : "");
      break;
    case engine::EventKind::kInotify: {
      nlohmann::ordered_json w = nlohmann::ordered_json::array();
      for (const auto& x : ev.inotify) w.push_back({{"wd", x.wd}, {"mask", x.mask}, {"path", x.path}});
      e["inotify"] = w;
      summary += " watching";
      for (const auto& x : ev.inotify) summary += " " + x.path;
      break;
    }
    case engine::EventKind::kEpoll: {
      nlohmann::ordered_json w = nlohmann::ordered_json::array();
      for (const auto& x : ev.watches) w.push_back({{"fd", x.tfd}, {"events", x.events}, {"data", x.data}});
      e["watches"] = w;
      summary += " watching " + std::to_string(ev.watches.size()) + " fds";
      break;
    }
  }
  e["summary"] = summary;
  return e;
}

}  // namespace

Status DescribeProcessImage(const image::ImageReader& r, nlohmann::ordered_json* j) {
  bool is_tree = false;
  ASSIGN_OR_RETURN(engine::TreeModel t, engine::ReadTreeModel(r, &is_tree));
  // A tree image: the members and shared objects, then the root in detail.
  if (is_tree) {
    nlohmann::ordered_json members = nlohmann::ordered_json::array();
    for (const auto& mb : t.members) {
      members.push_back(
          {{"pid", mb.pid}, {"ppid", mb.ppid}, {"pgid", mb.pgid}, {"sid", mb.sid}, {"zombie", mb.zombie}});
    }
    nlohmann::ordered_json objects = nlohmann::ordered_json::array();
    for (const auto& o : t.objects) {
      int attached = 0;
      for (const auto& a : t.attaches) attached += a.object == o.id ? 1 : 0;
      objects.push_back({{"id", o.id},
                         {"kind", engine::ShmKindName(o.kind)},
                         {"name", o.name},
                         {"size", o.size},
                         {"stored_bytes", engine::PagemapPages(o.runs) * 4096},
                         {"sysv_id", o.sysv_id},
                         {"sysv_key", o.sysv_key},
                         {"mappings", attached}});
    }
    nlohmann::ordered_json sems = nlohmann::ordered_json::array();
    for (const auto& s : t.sems) sems.push_back({{"id", s.id}, {"key", s.key}, {"values", s.values}});
    nlohmann::ordered_json queues = nlohmann::ordered_json::array();
    for (const auto& q : t.queues) {
      queues.push_back({{"id", q.id}, {"key", q.key}, {"messages", q.messages.size()}});
    }
    (*j)["tree"] = {{"members", members},
                    {"shared_objects", objects},
                    {"sysv_sem_sets", sems},
                    {"sysv_sem_undo", t.undo.size()},
                    {"sysv_msg_queues", queues}};
  }
  ASSIGN_OR_RETURN(engine::ProcessModel m, engine::ReadModel(r, engine::SectionPrefix(t, t.members[0].pid)));
  const engine::Core& c = m.core;
  (*j)["process"] = {{"pid", c.pid},
                     {"comm", c.comm},
                     {"exe", c.exe_file >= 0 ? m.files[c.exe_file].path : ""},
                     {"cwd", c.cwd},
                     {"kernel", c.kernel_release},
                     {"host", c.host},
                     {"dumped_at_ns", c.dumped_at_ns}};
  // The credentials the process will have again (its main thread's).
  nlohmann::ordered_json creds = {{"recorded", m.creds.recorded}};
  if (m.creds.recorded && !m.creds.threads.empty()) {
    const engine::ThreadCreds& tc = m.creds.threads[0];
    creds["uid"] = tc.uid;
    creds["gid"] = tc.gid;
    creds["groups"] = tc.groups;
    creds["cap_effective"] = engine::HexAddr(tc.cap_eff);
    creds["cap_permitted"] = engine::HexAddr(tc.cap_prm);
    creds["cap_inheritable"] = engine::HexAddr(tc.cap_inh);
    creds["cap_bounding"] = engine::HexAddr(tc.cap_bnd);
    creds["cap_ambient"] = engine::HexAddr(tc.cap_amb);
    creds["securebits"] = tc.securebits;
    creds["no_new_privs"] = tc.no_new_privs;
  }
  (*j)["process"]["credentials"] = creds;
  nlohmann::ordered_json threads = nlohmann::ordered_json::array();
  for (const auto& t : m.threads) {
    threads.push_back({{"tid", t.tid},
                       {"ip", engine::HexAddr(t.gpregs[16])},
                       {"sp", engine::HexAddr(t.gpregs[19])},
                       {"fs_base", engine::HexAddr(t.gpregs[21])},
                       {"sigmask", engine::HexAddr(t.sigmask)},
                       {"xsave_bytes", t.xsave.size()},
                       {"rseq", t.rseq_ptr != 0},
                       {"pending_signals", t.pending.size()}});
  }
  (*j)["threads"] = threads;
  nlohmann::ordered_json vmas = nlohmann::ordered_json::array();
  std::uint64_t mapped = 0;
  for (const auto& v : m.vmas) {
    mapped += v.size();
    vmas.push_back({{"start", engine::HexAddr(v.start)},
                    {"end", engine::HexAddr(v.end)},
                    {"size", v.size()},
                    {"prot", Prot(v.prot, (v.flags & engine::kVmaShared) != 0)},
                    {"kind", engine::VmaKindName(v.kind)},
                    {"name", v.name},
                    {"stored_bytes", StoredIn(m.pagemap, v.start, v.end)}});
  }
  std::uint64_t inherited = 0;
  RETURN_IF_ERROR(DescribeChain(r, t, j, &inherited));
  (*j)["memory"] = {{"mapped_bytes", mapped},
                    {"stored_bytes", engine::PagemapPages(m.pagemap) * 4096},
                    {"inherited_bytes", inherited},
                    {"runs", m.pagemap.size()}};
  (*j)["vmas"] = vmas;
  nlohmann::ordered_json fds = nlohmann::ordered_json::array();
  for (const auto& f : m.fds) {
    nlohmann::ordered_json e = {{"fd", f.fd}, {"kind", engine::FdKindName(f.kind)}, {"flags", f.flags}};
    if (f.file >= 0) e["path"] = m.files[f.file].path;
    if (f.kind == engine::FdKind::kPipe) {
      e["pipe"] = f.pipe_ino;
      e["end"] = f.pipe_write_end ? "write" : "read";
      e["internal"] = f.pipe_internal;
    } else {
      e["pos"] = f.pos;
    }
    if (f.dup_of >= 0) e["dup_of"] = f.dup_of;
    for (const auto& u : m.sockets) {
      if (f.kind != engine::FdKind::kSocket || u.fd != (f.dup_of >= 0 ? f.dup_of : f.fd)) continue;
      const char* type = u.type == 1 ? "stream" : u.type == 2 ? "datagram" : "seqpacket";
      e["socket"] = {{"type", type}, {"inode", u.ino}, {"peer", u.peer}, {"passcred", u.passcred}};
      AddExtras(u.extras, &e["socket"]);
    }
    for (const auto& l : m.unix_listeners) {
      if (f.kind != engine::FdKind::kUnixListener || l.fd != (f.dup_of >= 0 ? f.dup_of : f.fd)) continue;
      e["unix_listener"] = {
          {"name", l.name}, {"backlog", l.backlog}, {"type", l.type == 1 ? "stream" : "seqpacket"}};
      AddExtras(l.extras, &e["unix_listener"]);
    }
    for (const auto& u : m.inet_sockets) {
      bool inet = f.kind == engine::FdKind::kInet || f.kind == engine::FdKind::kInetConnected;
      if (!inet || u.fd != (f.dup_of >= 0 ? f.dup_of : f.fd)) continue;
      e["inet"] = {{"protocol", u.protocol == 6 ? "tcp" : "udp"},
                   {"address", engine::InetAddressText(u.addr)}};
      if (u.peer.empty()) e["inet"]["backlog"] = u.backlog;
      if (!u.peer.empty()) e["inet"]["peer"] = engine::InetAddressText(u.peer);
      if (!u.peer.empty() && u.protocol == 6) {
        e["inet"]["send_queue"] = u.tcp.sendq.size();
        e["inet"]["unsent"] = u.tcp.unsent;
        e["inet"]["receive_queue"] = u.tcp.recvq.size();
        e["inet"]["network_lock"] = u.tcp.lock;
        if (u.tcp.read_shut) e["inet"]["read_shut"] = true;    // CLOSE_WAIT: end-of-file after the queue
        if (u.tcp.write_shut) e["inet"]["write_shut"] = true;  // FIN_WAIT2: the process closed its side
      }
      AddExtras(u.extras, &e["inet"]);
    }
    nlohmann::ordered_json locks = nlohmann::ordered_json::array();
    for (const auto& l : m.locks) {
      if (l.fd != f.fd) continue;
      const char* kind = l.kind == engine::LockKind::kPosix ? "posix"
                         : l.kind == engine::LockKind::kOfd ? "ofd"
                                                            : "flock";
      locks.push_back({{"kind", kind}, {"write", l.write}, {"start", l.start}, {"len", l.len}});
    }
    if (!locks.empty()) e["locks"] = locks;
    for (const auto& ev : m.events) {
      if (f.kind == engine::FdKind::kEvent && ev.fd == (f.dup_of >= 0 ? f.dup_of : f.fd))
        e["event"] = EventJson(ev);
    }
    fds.push_back(e);
  }
  (*j)["fds"] = fds;
  nlohmann::ordered_json timers = nlohmann::ordered_json::array();
  for (const auto& t : m.posix_timers) {
    timers.push_back({{"id", t.id},
                      {"clockid", t.clockid},
                      {"signal", t.signo},
                      {"notify", t.notify},
                      {"tid", t.tid},
                      {"value_ns", t.value_ns},
                      {"interval_ns", t.interval_ns}});
  }
  if (!timers.empty()) (*j)["posix_timers"] = timers;
  return Status::Ok();
}

void PrintProcessImage(const nlohmann::ordered_json& j) {
  if (j.contains("tree")) {
    const auto& t = j["tree"];
    PrintText("tree        %zu processes\n", t["members"].size());
    for (const auto& m : t["members"]) {
      PrintText("  pid %-8d ppid %-8d pgid %-8d sid %-8d%s\n", m["pid"].get<int>(), m["ppid"].get<int>(),
                m["pgid"].get<int>(), m["sid"].get<int>(), m["zombie"].get<bool>() ? " zombie" : "");
    }
    PrintText("shared      %zu objects, %zu semaphore sets, %zu message queues\n", t["shared_objects"].size(),
              t["sysv_sem_sets"].size(), t["sysv_msg_queues"].size());
    for (const auto& o : t["shared_objects"]) {
      PrintText("  %-4d %-12s %10s %10s stored  %d mappings  %s\n", o["id"].get<int>(),
                o["kind"].get<std::string>().c_str(), HumanBytes(o["size"].get<std::uint64_t>()).c_str(),
                HumanBytes(o["stored_bytes"].get<std::uint64_t>()).c_str(), o["mappings"].get<int>(),
                o["name"].get<std::string>().c_str());
    }
  }
  if (j.contains("identity")) PrintText("identity    %s\n", j["identity"].get<std::string>().c_str());
  if (j.contains("parent")) {
    const auto& pa = j["parent"];
    PrintText("parent      %s (identity %s)\n", pa["path"].get<std::string>().c_str(),
              pa["identity"].get<std::string>().c_str());
    if (pa.contains("chain")) {
      for (const auto& c : pa["chain"]) PrintText("  chain     %s\n", c.get<std::string>().c_str());
    } else {
      PrintText("  chain     BROKEN: %s\n", pa["chain_error"].get<std::string>().c_str());
    }
  }
  const auto& p = j["process"];
  PrintText("process     %d '%s' (%s), cwd %s\n", p["pid"].get<int>(), p["comm"].get<std::string>().c_str(),
            p["exe"].get<std::string>().c_str(), p["cwd"].get<std::string>().c_str());
  PrintText("dumped on   %s, kernel %s\n", p["host"].get<std::string>().c_str(),
            p["kernel"].get<std::string>().c_str());
  const auto& cr = p["credentials"];
  if (cr["recorded"].get<bool>()) {
    PrintText("runs as     uid %u gid %u, capabilities effective %s permitted %s%s\n",
              cr["uid"][0].get<unsigned>(), cr["gid"][0].get<unsigned>(),
              cr["cap_effective"].get<std::string>().c_str(), cr["cap_permitted"].get<std::string>().c_str(),
              cr["no_new_privs"].get<bool>() ? ", no_new_privs" : "");
  } else {
    PrintText("runs as     (not recorded: an older ckpt wrote the image; it restores with ckpt's own)\n");
  }
  PrintText("threads     %zu\n", j["threads"].size());
  for (const auto& t : j["threads"]) {
    PrintText("  tid %-8d ip %-14s sp %-14s fs_base %s\n", t["tid"].get<int>(),
              t["ip"].get<std::string>().c_str(), t["sp"].get<std::string>().c_str(),
              t["fs_base"].get<std::string>().c_str());
  }
  const auto& mem = j["memory"];
  PrintText("memory      %s mapped, %s stored in %zu runs",
            HumanBytes(mem["mapped_bytes"].get<std::uint64_t>()).c_str(),
            HumanBytes(mem["stored_bytes"].get<std::uint64_t>()).c_str(), mem["runs"].get<std::size_t>());
  if (j.contains("parent")) {
    PrintText(", %s in the parent chain", HumanBytes(mem["inherited_bytes"].get<std::uint64_t>()).c_str());
  }
  PrintText("\n");
  for (const auto& v : j["vmas"]) {
    PrintText("  %12s-%-12s %s %10s %10s stored  %-11s %s\n", v["start"].get<std::string>().c_str(),
              v["end"].get<std::string>().c_str(), v["prot"].get<std::string>().c_str(),
              HumanBytes(v["size"].get<std::uint64_t>()).c_str(),
              HumanBytes(v["stored_bytes"].get<std::uint64_t>()).c_str(),
              v["kind"].get<std::string>().c_str(), v["name"].get<std::string>().c_str());
  }
  PrintText("fds         %zu\n", j["fds"].size());
  for (const auto& f : j["fds"]) {
    std::string what;
    if (f.contains("path")) {
      what = f["path"].get<std::string>();
    } else if (f.contains("pipe")) {
      what = "pipe:[" + std::to_string(f["pipe"].get<std::uint64_t>()) + "] " + f["end"].get<std::string>() +
             " end";
    } else if (f.contains("event")) {
      what = f["event"]["summary"].get<std::string>();
    } else if (f.contains("inet")) {
      what = f["inet"]["protocol"].get<std::string>() == "tcp"
                 ? "TCP listening on " + f["inet"]["address"].get<std::string>() + ", backlog " +
                       std::to_string(f["inet"]["backlog"].get<int>())
                 : "UDP bound to " + f["inet"]["address"].get<std::string>();
      for (const auto& g : f["inet"].value("multicast", nlohmann::ordered_json::array()))
        what += ", member of " + g.get<std::string>();
      if (f["inet"].contains("options"))
        what += ", " + std::to_string(f["inet"]["options"].size()) + " more options";
      if (f["inet"].contains("filter_insns")) what += ", a socket filter";
    } else if (f.contains("socket")) {
      what = "Unix " + f["socket"]["type"].get<std::string>() + " socket:[" +
             std::to_string(f["socket"]["inode"].get<std::uint32_t>()) + "], peer socket:[" +
             std::to_string(f["socket"]["peer"].get<std::uint32_t>()) + "]";
    }
    if (f.contains("locks")) {
      for (const auto& l : f["locks"]) {
        std::int64_t start = l["start"].get<std::int64_t>(), len = l["len"].get<std::int64_t>();
        what += ", " + l["kind"].get<std::string>() + (l["write"].get<bool>() ? " write" : " read") + " lock";
        if (l["kind"] != "flock")
          what += " " + std::to_string(start) + "-" +
                  (len == 0 ? std::string("EOF") : std::to_string(start + len - 1));
      }
    }
    PrintText("  %4d %-12s %s\n", f["fd"].get<int>(), f["kind"].get<std::string>().c_str(), what.c_str());
  }
  if (j.contains("posix_timers")) {
    PrintText("timers      %zu POSIX\n", j["posix_timers"].size());
    for (const auto& t : j["posix_timers"]) {
      std::int64_t v = t["value_ns"].get<std::int64_t>(), iv = t["interval_ns"].get<std::int64_t>();
      PrintText("  id %-4d clock %-3d signal %-3d %s%s\n", t["id"].get<int>(), t["clockid"].get<int>(),
                t["signal"].get<int>(),
                v == 0 ? "disarmed" : (std::to_string(v / 1000000) + " ms left").c_str(),
                iv == 0 ? "" : (", every " + std::to_string(iv / 1000000) + " ms").c_str());
    }
  }
}

}  // namespace ckpt::cli
