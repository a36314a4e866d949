// The number facets behind detail::ExactNumberLocale() (include/ckpt/
// serialize.hpp): floating-point values in a distribution's text form are
// written as the shortest decimal that reads back to the same bits and read
// exactly, with libstdc++'s own to_chars/from_chars rather than the C
// library's printf/strtod, which differ between glibc and the Windows runtime.
// Non-finite numbers are refused on reading. Thread-safe.
#include <charconv>
#include <cmath>
#include <cstddef>
#include <ios>
#include <locale>
#include <string>
#include <system_error>

#include "ckpt/serialize.hpp"

namespace ckpt::detail {
namespace {

class ExactNumPut final : public std::num_put<char> {
 protected:
  // float arrives here too (operator<< promotes it to double, exactly).
  iter_type do_put(iter_type out, std::ios_base&, char, double v) const override {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    for (const char* p = buf; p != r.ptr; ++p) *out++ = *p;
    return out;
  }
};

class ExactNumGet final : public std::num_get<char> {
 protected:
  iter_type do_get(iter_type in, iter_type end, std::ios_base&, std::ios_base::iostate& err,
                   double& v) const override {
    return Get(in, end, err, v);
  }
  iter_type do_get(iter_type in, iter_type end, std::ios_base&, std::ios_base::iostate& err,
                   float& v) const override {
    return Get(in, end, err, v);
  }

 private:
  // A decimal number (both this facet's form and the one libstdc++ writes
  // itself, "1.00000000000000000e+00"); the stream has skipped blanks.
  template <typename F>
  static iter_type Get(iter_type in, iter_type end, std::ios_base::iostate& err, F& v) {
    std::string tok;
    for (; in != end && tok.size() < 64; ++in) {
      char c = *in;
      if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')) break;
      tok.push_back(c);
    }
    err = in == end ? std::ios_base::eofbit : std::ios_base::goodbit;
    F x = 0;
    auto r = std::from_chars(tok.data(), tok.data() + tok.size(), x);
    if (tok.empty() || r.ec != std::errc() || r.ptr != tok.data() + tok.size() || !std::isfinite(x)) {
      err |= std::ios_base::failbit;
      v = 0;
      return in;
    }
    v = x;
    return in;
  }
};

}  // namespace

const std::locale& ExactNumberLocale() {
  static const std::locale loc(std::locale(std::locale::classic(), new ExactNumPut), new ExactNumGet);
  return loc;
}

}  // namespace ckpt::detail
