#include "engine/timers.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/proc.h"

namespace ckpt::engine {

Status DumpTimers(Injector* inj, Core* core) {
  core->itimers.clear();
  for (int which = 0; which < 3; ++which) {
    RETURN_IF_ERROR(
        inj->Call("getitimer", SYS_getitimer, {static_cast<std::uint64_t>(which), inj->scratch()}).status());
    std::uint64_t v[4];
    RETURN_IF_ERROR(ReadMemory(inj->tid(), inj->scratch(), v, sizeof v));
    core->itimers.insert(core->itimers.end(), v, v + 4);
  }
  return Status::Ok();
}

Status RestoreTimers(const Core& core, Injector* inj) {
  for (std::size_t which = 0; which < 3 && (which + 1) * 4 <= core.itimers.size(); ++which) {
    std::uint64_t v[4];
    std::copy_n(&core.itimers[which * 4], 4, v);
    if ((v[2] | v[3]) == 0) {
      // A periodic timer that has just expired reads as disarmed until its
      // signal is dequeued (the kernel re-arms it then); that signal is in
      // the image as pending. Arm it for one more interval.
      if ((v[0] | v[1]) == 0) continue;
      v[2] = v[0];
      v[3] = v[1];
    }
    ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(0, v, sizeof v));
    RETURN_IF_ERROR(inj->Call("setitimer", SYS_setitimer, {which, at, 0}).status());
  }
  return Status::Ok();
}

namespace {

// prctl(PR_TIMER_CREATE_RESTORE_IDS): Linux 6.16's uapi, not yet in every libc's headers.
constexpr std::uint64_t kPrTimerCreateRestoreIds = 77;
constexpr std::int64_t kNs = 1000000000;

}  // namespace

Status DumpPosixTimers(pid_t pid, Injector* inj, std::vector<PosixTimer>* out) {
  out->clear();
  auto text = ReadProcFile(pid, "timers");
  if (!text.ok())
    return text.status().WithContext("reading the POSIX timers of process " + std::to_string(pid));
  std::size_t p = 0;
  while ((p = text->find("ID:", p)) != std::string::npos) {
    std::size_t next = text->find("\nID:", p);
    std::string block = text->substr(p, next == std::string::npos ? std::string::npos : next + 1 - p);
    p = next == std::string::npos ? text->size() : next + 1;
    PosixTimer t;
    t.id = std::atoi(TextField(block, "ID").c_str());
    t.clockid = std::atoi(TextField(block, "ClockID").c_str());
    std::string sig = TextField(block, "signal"), notify = TextField(block, "notify");
    t.signo = std::atoi(sig.c_str());
    std::size_t slash = sig.find('/');
    if (slash != std::string::npos) t.value = std::strtoull(sig.c_str() + slash + 1, nullptr, 16);
    std::size_t dot = notify.find('.');
    if (notify.compare(0, 7, "signal/") == 0) {
      t.notify = SIGEV_SIGNAL;
    } else if (notify.compare(0, 5, "none/") == 0) {
      t.notify = SIGEV_NONE;
    } else {
      return NotSupported("POSIX timer " + std::to_string(t.id) + " of process " + std::to_string(pid) +
                          " notifies by " + notify);
    }
    if (notify.find("/tid.") != std::string::npos) {
      t.notify |= SIGEV_THREAD_ID;
      t.tid = dot == std::string::npos ? 0 : std::atoi(notify.c_str() + dot + 1);
    }
    if (t.clockid < 0) {
      return NotSupported("POSIX timer " + std::to_string(t.id) + " of process " + std::to_string(pid) +
                          " runs on another process's CPU-time clock");
    }
    std::string what = "POSIX timer " + std::to_string(t.id);
    RETURN_IF_ERROR(inj->Call("timer_gettime(" + what + ")", SYS_timer_gettime,
                              {static_cast<std::uint64_t>(t.id), inj->scratch()})
                        .status());
    std::int64_t v[4];  // it_interval, it_value
    RETURN_IF_ERROR(ReadMemory(inj->tid(), inj->scratch(), v, sizeof v));
    t.interval_ns = v[0] * kNs + v[1];
    t.value_ns = v[2] * kNs + v[3];
    ASSIGN_OR_RETURN(std::uint64_t ov, inj->Call("timer_getoverrun(" + what + ")", SYS_timer_getoverrun,
                                                 {static_cast<std::uint64_t>(t.id)}));
    t.overrun = static_cast<std::int32_t>(ov);
    out->push_back(t);
  }
  std::sort(out->begin(), out->end(), [](const PosixTimer& a, const PosixTimer& b) { return a.id < b.id; });
  return Status::Ok();
}

Status RestorePosixTimers(const std::vector<PosixTimer>& timers, Injector* inj) {
  if (timers.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(long on, inj->Raw(SYS_prctl, {kPrTimerCreateRestoreIds, 1, 0, 0, 0}));
  if (on < 0) {
    return NotSupported(
        "this kernel cannot create a POSIX timer with a given id (prctl PR_TIMER_CREATE_RESTORE_IDS, "
        "Linux 6.16 or later), which the process's timers need: " +
        std::string(std::strerror(static_cast<int>(-on))));
  }
  for (const auto& t : timers) {
    // struct sigevent (64 bytes: value, signo, notify, tid), then the id asked for.
    unsigned char buf[68] = {};
    std::memcpy(buf, &t.value, 8);
    std::memcpy(buf + 8, &t.signo, 4);
    std::memcpy(buf + 12, &t.notify, 4);
    std::memcpy(buf + 16, &t.tid, 4);
    std::memcpy(buf + 64, &t.id, 4);
    ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(0, buf, sizeof buf));
    std::string what = "POSIX timer " + std::to_string(t.id);
    RETURN_IF_ERROR(inj->Call("timer_create(" + what + ")", SYS_timer_create,
                              {static_cast<std::uint64_t>(t.clockid), at, at + 64})
                        .status());
    std::int32_t got = -1;
    RETURN_IF_ERROR(ReadMemory(inj->tid(), at + 64, &got, sizeof got));
    if (got != t.id) return Internal("timer_create gave " + what + " the id " + std::to_string(got));
  }
  RETURN_IF_ERROR(
      inj->Call("prctl(PR_TIMER_CREATE_RESTORE_IDS, off)", SYS_prctl, {kPrTimerCreateRestoreIds, 0, 0, 0, 0})
          .status());
  for (const auto& t : timers) {
    std::int64_t value = t.value_ns;
    // A periodic timer whose signal is still pending reads as disarmed
    // until the signal is dequeued (the signal is in the image as pending):
    // armed for one more period.
    if (value == 0) value = t.interval_ns;
    if (value == 0) continue;
    std::int64_t its[4] = {t.interval_ns / kNs, t.interval_ns % kNs, value / kNs, value % kNs};
    ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(0, its, sizeof its));
    RETURN_IF_ERROR(inj->Call("timer_settime(POSIX timer " + std::to_string(t.id) + ")", SYS_timer_settime,
                              {static_cast<std::uint64_t>(t.id), 0, at, 0})
                        .status());
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
