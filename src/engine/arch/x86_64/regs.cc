#include "engine/arch/x86_64/regs.h"

#include <sys/syscall.h>

#include <cerrno>

extern "C" void ckpt_engine_gadget();
asm(".text\n"
    ".globl ckpt_engine_gadget\n"
    ".type ckpt_engine_gadget,@function\n"
    "ckpt_engine_gadget:\n"
    "  syscall\n"
    "  int3\n"
    ".size ckpt_engine_gadget, .-ckpt_engine_gadget\n");

// The write loop (see WriteLoopCode): position-independent, copied into the
// tracee's gadget page. r12 = table of {address, length, file offset}
// entries, r13 = entries left, r14 = descriptor. Stops at int3 when r13 is
// 0, or at the first pwrite64 that wrote less than asked (r12 = its entry);
// let go there, it spins (`jmp .`) as the gadget does.
extern "C" const unsigned char ckpt_engine_write_loop[];
extern "C" const unsigned char ckpt_engine_write_loop_end[];
static_assert(SYS_pwrite64 == 18, "the write loop's system call number");
asm(".text\n"
    ".globl ckpt_engine_write_loop\n"
    ".globl ckpt_engine_write_loop_end\n"
    "ckpt_engine_write_loop:\n"
    "1:\n"
    "  test %r13, %r13\n"
    "  jz 2f\n"
    "  mov $18, %eax\n"
    "  mov %r14, %rdi\n"
    "  mov (%r12), %rsi\n"
    "  mov 8(%r12), %rdx\n"
    "  mov 16(%r12), %r10\n"
    "  syscall\n"
    "  cmp %rdx, %rax\n"
    "  jne 2f\n"
    "  add $24, %r12\n"
    "  dec %r13\n"
    "  jmp 1b\n"
    "2:\n"
    "  int3\n"
    "3:\n"
    "  jmp 3b\n"
    "ckpt_engine_write_loop_end:\n");

namespace ckpt::engine::arch {

namespace {
// Kernel-internal errno values seen in rax of a thread stopped in a syscall.
constexpr long kERestartSys = 512;
constexpr long kERestartNoIntr = 513;
constexpr long kERestartNoHand = 514;
constexpr long kERestartRestartBlock = 516;
}  // namespace

std::uint64_t BuiltinGadget() {
  return reinterpret_cast<std::uint64_t>(&ckpt_engine_gadget);
}

std::pair<const unsigned char*, std::size_t> WriteLoopCode() {
  return {ckpt_engine_write_loop,
          static_cast<std::size_t>(ckpt_engine_write_loop_end - ckpt_engine_write_loop)};
}

void SetWriteLoop(Regs* r, std::uint64_t code, std::uint64_t table, std::uint64_t count, int fd) {
  r->rip = code;
  r->orig_rax = static_cast<std::uint64_t>(-1);  // no restart logic on resume
  r->r12 = table;
  r->r13 = count;
  r->r14 = static_cast<std::uint64_t>(fd);
}

WriteLoopStop WriteLoopProgress(const Regs& r, std::uint64_t count) {
  WriteLoopStop s;
  s.done = count - r.r13;
  s.failed = r.r13 != 0;
  return s;
}

std::array<std::uint64_t, kGpRegs> ToArray(const Regs& r) {
  return {r.r15,    r.r14, r.r13, r.r12,     r.rbp,     r.rbx, r.r11,      r.r10, r.r9,
          r.r8,     r.rax, r.rcx, r.rdx,     r.rsi,     r.rdi, r.orig_rax, r.rip, r.cs,
          r.eflags, r.rsp, r.ss,  r.fs_base, r.gs_base, r.ds,  r.es,       r.fs,  r.gs};
}

Regs FromArray(const std::array<std::uint64_t, kGpRegs>& a) {
  Regs r{};
  r.r15 = a[0];
  r.r14 = a[1];
  r.r13 = a[2];
  r.r12 = a[3];
  r.rbp = a[4];
  r.rbx = a[5];
  r.r11 = a[6];
  r.r10 = a[7];
  r.r9 = a[8];
  r.r8 = a[9];
  r.rax = a[10];
  r.rcx = a[11];
  r.rdx = a[12];
  r.rsi = a[13];
  r.rdi = a[14];
  r.orig_rax = a[15];
  r.rip = a[16];
  r.cs = a[17];
  r.eflags = a[18];
  r.rsp = a[19];
  r.ss = a[20];
  r.fs_base = a[21];
  r.gs_base = a[22];
  r.ds = a[23];
  r.es = a[24];
  r.fs = a[25];
  r.gs = a[26];
  return r;
}

void SetSyscall(Regs* r, std::uint64_t gadget, long nr, const std::uint64_t args[6]) {
  r->rip = gadget;
  r->rax = static_cast<std::uint64_t>(nr);
  r->orig_rax = static_cast<std::uint64_t>(-1);  // no restart logic on resume
  r->rdi = args[0];
  r->rsi = args[1];
  r->rdx = args[2];
  r->r10 = args[3];
  r->r8 = args[4];
  r->r9 = args[5];
}

long SyscallResult(const Regs& r) {
  return static_cast<long>(r.rax);
}
std::uint64_t Ip(const Regs& r) {
  return r.rip;
}
std::uint64_t Sp(const Regs& r) {
  return r.rsp;
}
std::uint64_t FsBase(const Regs& r) {
  return r.fs_base;
}
// __USER_CS: 32-bit compat processes run with another code segment.
bool IsNative64(const Regs& r) {
  return r.cs == 0x33;
}

void FixSyscallRestart(Regs* r) {
  if (static_cast<long>(r->orig_rax) < 0) return;
  switch (-static_cast<long>(static_cast<int>(r->rax))) {
    case kERestartSys:
    case kERestartNoIntr:
    case kERestartNoHand:
      r->rax = r->orig_rax;
      r->rip -= 2;
      break;
    case kERestartRestartBlock:
      if (static_cast<long>(r->orig_rax) == SYS_poll) {
        // poll() with a timeout: called again, its timeout starting anew
        // (programs such as tail -f take EINTR from poll as fatal).
        r->rax = r->orig_rax;
        r->rip -= 2;
      } else {
        r->rax = static_cast<std::uint64_t>(-EINTR);
      }
      break;
    default:
      break;
  }
}

bool RestartInterruptedSemop(Regs* r) {
  long nr = static_cast<long>(r->orig_rax);
  if ((nr != SYS_semop && nr != SYS_semtimedop) || static_cast<long>(r->rax) != -EINTR) return false;
  r->rax = r->orig_rax;
  r->rip -= 2;
  return true;
}

void ClearInSyscall(Regs* r) {
  r->orig_rax = static_cast<std::uint64_t>(-1);
}

}  // namespace ckpt::engine::arch
