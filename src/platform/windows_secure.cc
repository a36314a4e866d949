// RandomBytes and WritePrivateFile on Windows: BCryptGenRandom (the system's
// preferred generator), and a CREATE_NEW file renamed into place.
#include <windows.h>
// after windows.h
#include <bcrypt.h>

#include "platform/secure.h"
#include "platform/windows_util.h"

namespace ckpt::platform {

Status RandomBytes(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    ULONG n = size > 0x10000000 ? 0x10000000 : static_cast<ULONG>(size);
    NTSTATUS st = BCryptGenRandom(nullptr, p, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    if (st < 0)
      return IoError("read random bytes: BCryptGenRandom failed (status " + std::to_string(st) + ")");
    p += n;
    size -= n;
  }
  return Status::Ok();
}

Status WritePrivateFile(const std::string& path, std::string_view data) {
  unsigned char r[8];
  RETURN_IF_ERROR(RandomBytes(r, sizeof r));
  std::string tmp = path + "." + HexEncode(std::string_view(reinterpret_cast<char*>(r), sizeof r)) + ".tmp";
  std::wstring wtmp = Widen(tmp);
  HANDLE h = CreateFileW(wtmp.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_NEW,
                         FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, nullptr);
  if (h == INVALID_HANDLE_VALUE) return WindowsError("create", tmp, GetLastError());
  Status st;
  const char* p = data.data();
  std::size_t left = data.size();
  while (st.ok() && left > 0) {
    DWORD chunk = left > 0x10000000 ? 0x10000000 : static_cast<DWORD>(left), done = 0;
    if (!WriteFile(h, p, chunk, &done, nullptr)) st = WindowsError("write", tmp, GetLastError());
    p += done;
    left -= done;
  }
  CloseHandle(h);
  if (st.ok() && !MoveFileReplacing(wtmp, Widen(path)))
    st = WindowsError("rename " + tmp + " to", path, GetLastError());
  if (!st.ok()) DeleteFileW(wtmp.c_str());
  return st;
}

}  // namespace ckpt::platform
