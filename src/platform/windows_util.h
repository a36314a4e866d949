// Windows-only helpers shared by the Windows platform files.
#pragma once

#include <string>

#include "util/status.h"

namespace ckpt::platform {

// "op object: <FormatMessage text> (error N)" as a Status.
Status WindowsError(const std::string& op, const std::string& object, unsigned long err);
std::wstring Widen(const std::string& utf8);
std::string Narrow(const std::wstring& wide);
// MoveFileExW(REPLACE_EXISTING | WRITE_THROUGH), retried while another
// process holds `to` open (up to 5 s); false with GetLastError() set on failure.
bool MoveFileReplacing(const std::wstring& from, const std::wstring& to);

}  // namespace ckpt::platform
