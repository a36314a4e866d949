// Constants of the ckpt image container (docs/image-format.md is the
// specification; keep the two in step). No OS headers.
#pragma once

#include <cstdint>

namespace ckpt::image {

// File header: 32 bytes.
inline constexpr unsigned char kFileMagic[8] = {0x89, 'C', 'K', 'P', 'T', 0x0D, 0x0A, 0x1A};
inline constexpr std::uint16_t kFormatMajor = 1;
inline constexpr std::uint16_t kFormatMinor = 1;
inline constexpr std::uint32_t kFileHeaderSize = 32;

// Trailer: 32 bytes at the very end of the file.
inline constexpr unsigned char kTrailerMagic[8] = {'C', 'K', 'P', 'T', 'E', 'N', 'D', '\n'};
inline constexpr std::uint32_t kTrailerSize = 32;

inline constexpr std::uint32_t kSectionMagic = 0x54434553;  // "SECT" little-endian
inline constexpr std::uint32_t kTableMagic = 0x4c424154;    // "TABL"

// Frames: raw payload is cut into frames of at most kMaxFrameRaw bytes.
inline constexpr std::uint32_t kDefaultFrameSize = 4u << 20;
inline constexpr std::uint32_t kMaxFrameRaw = 64u << 20;
inline constexpr std::uint32_t kFrameStoredRaw = 0x80000000u;  // stored_len flag
inline constexpr std::uint32_t kFrameHeaderSize = 16;

// Section flags.
inline constexpr std::uint8_t kSectionRequired = 0x01;  // a reader that does not know the type must fail

// Image kinds (header field `kind`).
enum class ImageKind : std::uint16_t {
  kProgram = 1,  // a CKPT library checkpoint of one program
  kGroup = 2,    // a coordinated checkpoint of a dependent process group
  kProcess = 3,  // a transparent-engine dump of unmodified processes
};

const char* ImageKindName(ImageKind kind);

}  // namespace ckpt::image
