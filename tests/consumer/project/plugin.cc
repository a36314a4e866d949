// sums.cc's program as a function of a shared library (libsums_plugin.so)
// that holds libckpt.a.
#define SUMS_PLUGIN 1
#include "sums.cc"
