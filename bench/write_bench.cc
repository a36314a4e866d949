// Checkpoint write and resume read throughput for 64 MiB .. 1 GiB of state
// (a vector<double>), against a raw write / read of the same bytes to the same
// directory in the same run. Both sides fsync. Also prints image size / raw
// state size.
//
//   write_bench [DIR] [--sizes 64,256,1024] [--codecs none,zstd,zlib]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

static double RawWrite(const std::string& path, const void* p, std::size_t n) {
  auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const char* c = static_cast<const char*>(p);
  std::size_t left = n;
  while (left > 0) {
    ssize_t w = ::write(fd, c, left);
    if (w <= 0) std::abort();
    c += w;
    left -= static_cast<std::size_t>(w);
  }
  ::fsync(fd);
  ::close(fd);
  return Since(t0);
}

static double RawRead(const std::string& path, void* p, std::size_t n) {
  auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  char* c = static_cast<char*>(p);
  std::size_t left = n;
  while (left > 0) {
    ssize_t r = ::read(fd, c, left);
    if (r <= 0) std::abort();
    c += r;
    left -= static_cast<std::size_t>(r);
  }
  ::close(fd);
  return Since(t0);
}

static double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

static std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b <= s.size()) {
    auto e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

int main(int argc, char** argv) {
  std::string dir = "bench-tmp";
  std::vector<std::string> sizes = {"64", "256", "1024"}, codecs = {"none", "zstd", "zlib"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc)
      sizes = Split(argv[++i]);
    else if (a == "--codecs" && i + 1 < argc)
      codecs = Split(argv[++i]);
    else
      dir = a;
  }
  fs::create_directories(dir);
  std::printf("checkpoint write / resume read vs raw write / read of the same bytes, dir %s, fsync on both\n",
              dir.c_str());
  std::printf("%-8s %-6s %10s %10s %8s %10s %10s %8s %10s\n", "state", "codec", "raw w s", "ckpt w s",
              "w ratio", "raw r s", "resume s", "r ratio", "size/raw");
  for (const auto& sz : sizes) {
    std::size_t mib = std::strtoull(sz.c_str(), nullptr, 10);
    std::size_t n = mib * (1u << 20) / sizeof(double);
    // Smooth field with noise: compressible, but not trivially.
    std::vector<double> data(n);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> noise(0, 1e-3);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<double>(i % 4096) * 0.25 + noise(rng);
    const std::size_t bytes = n * sizeof(double);
    for (const auto& codec : codecs) {
      // Each measurement three times, alternating raw and ckpt; medians.
      std::vector<double> tw, tc, tr, tres;
      std::uintmax_t isize = 0;
      bool failed = false;
      for (int rep = 0; rep < 3 && !failed; ++rep) {
        std::string raw = dir + "/raw.bin";
        tw.push_back(RawWrite(raw, data.data(), bytes));
        {
          // Like a resuming program: read into freshly allocated memory.
          auto t0 = Clock::now();
          std::unique_ptr<double[]> back(new double[n]);
          RawRead(raw, back.get(), bytes);
          tr.push_back(Since(t0));
        }
        fs::remove(raw);
        std::string cdir = dir + "/ckpt-" + codec;
        fs::remove_all(cdir);
        ckpt::Options o;
        o.dir = cdir;
        o.codec = codec;
        o.quiet = true;
        o.listen = false;
        o.name = "bench";
        o.page_cache = std::getenv("CKPT_PAGE_CACHE") != nullptr;  // the image through the page cache
        std::string image;
        {
          ckpt::Session s(o);
          s.bind("state", data);
          auto t0 = Clock::now();
          if (s.checkpoint() != ckpt::Event::kCheckpointed) {
            std::printf("%-8s %-6s checkpoint failed: %s\n", sz.c_str(), codec.c_str(),
                        s.last_error().c_str());
            failed = true;
            break;
          }
          tc.push_back(Since(t0));
          image = s.last_image();
        }
        isize = fs::file_size(image);
        {
          ckpt::Options r = o;
          r.resume = image;
          auto t0 = Clock::now();
          ckpt::Session s(r);
          auto& v = s.var("state", std::vector<double>());
          tres.push_back(Since(t0));
          if (v.size() != n || std::memcmp(v.data(), data.data(), bytes) != 0) {
            std::printf("resume returned different data!\n");
            return 1;
          }
        }
        fs::remove_all(cdir);
      }
      if (failed) continue;
      double w = Median(tw), c = Median(tc), r = Median(tr), re = Median(tres);
      std::printf("%-8s %-6s %10.3f %10.3f %7.2fx %10.3f %10.3f %7.2fx %10.4f\n", (sz + "MiB").c_str(),
                  codec.c_str(), w, c, w / c, r, re, r / re,
                  static_cast<double>(isize) / static_cast<double>(bytes));
      std::fflush(stdout);
    }
  }
  std::printf(
      "w ratio = raw write time / checkpoint time (1.0 = as fast as raw; >= 0.9 is the goal)\n"
      "r ratio = raw read time / resume time; both read from the page cache into fresh memory\n"
      "medians of 3 alternating repetitions\n");
  fs::remove_all(dir);
  return 0;
}
