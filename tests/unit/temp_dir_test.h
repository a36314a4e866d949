// A test fixture with a fresh directory per test (removed afterwards) and the
// session's runtime directory inside it, so that tests never touch the
// user's registrations. Used by the session, C API and distribution tests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "ckpt/ckpt.hpp"

namespace ckpt {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() / ("ckpt-" + std::string(info->test_suite_name()) + "-" +
                                                     std::to_string(::getpid()) + "-" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    setenv("CKPT_RUNTIME_DIR", Run().c_str(), 1);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Run() const { return (dir_ / "run").string(); }
  // Session options writing into the test's directory, errors thrown.
  Options Opts(std::string resume = "", std::string name = "t") const {
    Options o;
    o.dir = dir_.string();
    o.resume = std::move(resume);
    o.quiet = true;
    o.throw_on_error = true;
    o.name = std::move(name);
    return o;
  }

  std::filesystem::path dir_;
};

}  // namespace ckpt
