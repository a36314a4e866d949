// Round trips through a type's Traits, for the serialization tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "ckpt/serialize.hpp"
#include "state/value_walk.h"

namespace ckpt {

template <typename T>
std::string Encode(const T& v) {
  StringWriter w;
  Traits<T>::Save(w, v);
  return w.str();
}

template <typename T>
T RoundTrip(const T& v) {
  std::string bytes = Encode(v);
  StringReader r(bytes);
  T out{};
  Traits<T>::Load(r, out, Traits<T>::Describe());
  EXPECT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r.AtEnd());
  // The descriptor-driven walker must consume exactly the same bytes.
  StringReader r2(bytes);
  std::string text;
  state::WalkValue(r2, Traits<T>::Describe(), &text, 1000);
  EXPECT_TRUE(r2.ok()) << r2.error();
  EXPECT_TRUE(r2.AtEnd());
  // The descriptor's text form parses back to itself.
  TypeDesc parsed;
  std::string desc = Traits<T>::Describe().ToString();
  EXPECT_TRUE(ParseTypeDesc(desc, &parsed)) << desc;
  EXPECT_EQ(parsed, Traits<T>::Describe()) << desc << " vs " << parsed.ToString();
  return out;
}

}  // namespace ckpt
