// State that evolves: an image written by one version of a program's structs
// is loaded into another version (added, removed, renamed, reordered and
// widened fields; CKPT_VERSION; ckpt::Upgrade<T>; ckpt::OldFields).
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/serialize.hpp"
#include "serialize_util.h"
#include "state/compat.h"

namespace v1 {
struct Item {
  std::int32_t id = 0;
  std::string label;
  float weight = 0;
};
CKPT_FIELDS(Item, id, label, weight)

struct Account {
  std::string holder;
  std::int32_t balance = 0;
  std::uint8_t flags = 0;
  std::vector<Item> items;
};
CKPT_FIELDS(Account, holder, balance, flags, items)

struct Span {  // metres, before version 2 stored centimetres
  std::int32_t length = 0;
};
CKPT_FIELDS(Span, length)
}  // namespace v1

namespace v2 {
// Item: `label` removed, `weight` widened to double, `tags` added, order changed.
struct Item {
  double weight = 0;
  std::int64_t id = 0;
  std::vector<std::string> tags = {"new"};
};
CKPT_FIELDS(Item, weight, id, tags)
CKPT_VERSION(Item, 2)

// Account: `holder` renamed `owner`, `balance` widened, `flags` replaced by
// `overdrafts` (converted by the hook), `rate` added with a default.
struct Account {
  std::string owner;
  std::int64_t balance = 0;
  std::int64_t overdrafts = 0;
  double rate = 0.25;
  std::vector<Item> items;
};
CKPT_FIELDS(Account, owner, balance, overdrafts, rate, items)
CKPT_VERSION(Account, 2)

struct Span {
  std::int32_t length = 0;
};
CKPT_FIELDS(Span, length)
CKPT_VERSION(Span, 2)
}  // namespace v2

// A struct whose field changed type, converted by the hook.
namespace v1 {
struct Temp {
  std::string celsius;  // "21.5"
};
CKPT_FIELDS(Temp, celsius)
}  // namespace v1
namespace v2 {
struct Temp {
  double celsius = -1;
};
CKPT_FIELDS(Temp, celsius)
}  // namespace v2

// Removed fields of many kinds between two kept ones.
namespace v1 {
struct Wide {
  std::int32_t a = 0;
  std::map<std::string, std::vector<std::optional<double>>> gone;
  std::vector<std::vector<Item>> nested;
  std::int32_t z = 0;
};
CKPT_FIELDS(Wide, a, gone, nested, z)
}  // namespace v1
namespace v2 {
struct Wide {
  std::int32_t a = 0;
  std::int32_t z = 0;
};
CKPT_FIELDS(Wide, a, z)
}  // namespace v2

// The same change without a hook: refused.
namespace v2 {
struct Plain {
  double celsius = -1;
};
CKPT_FIELDS(Plain, celsius)
}  // namespace v2
namespace v1 {
struct Plain {
  std::string celsius;
};
CKPT_FIELDS(Plain, celsius)
}  // namespace v1

template <>
struct ckpt::Upgrade<v2::Account> {
  static constexpr ckpt::Renamed kRenamed[] = {{"holder", "owner"}};
  static inline int calls = 0;
  static inline std::vector<std::string> seen;
  static bool Apply(const ckpt::OldFields& old, v2::Account& now) {
    ++calls;
    seen = old.names();
    std::uint8_t flags = 0;
    if (old.get("flags", flags)) now.overdrafts = flags & 1;
    return now.owner != "refuse me";
  }
};

template <>
struct ckpt::Upgrade<v2::Span> {
  static void Apply(const ckpt::OldFields& old, v2::Span& now) {
    if (old.version() < 2) now.length *= 100;  // metres to centimetres
  }
};

template <>
struct ckpt::Upgrade<v2::Temp> {
  static bool Apply(const ckpt::OldFields& old, v2::Temp& now) {
    std::string text;
    if (!old.get("celsius", text)) return false;
    now.celsius = std::stod(text);
    return true;
  }
};

namespace ckpt {
namespace {

// Saves `from`, then loads it into `to` as a resume does: the image's type
// descriptor as text, parsed, matched against the program's, then loaded.
template <typename From, typename To>
std::string Evolve(const From& from, To& to) {
  std::string bytes = Encode(from);
  TypeDesc img;
  EXPECT_TRUE(ParseTypeDesc(Traits<From>::Describe().ToString(), &img));
  std::string why;
  if (!detail::MatchType(&img, Traits<To>::Describe(), &why)) return "refused: " + why;
  StringReader r(bytes);
  Traits<To>::Load(r, to, img);
  if (!r.ok()) return "failed: " + r.error();
  if (!r.AtEnd()) return "failed: bytes left";
  return "";
}

v1::Account SampleAccount() {
  v1::Account a;
  a.holder = "ada";
  a.balance = -42;
  a.flags = 3;
  a.items = {{7, "first", 1.5f}, {8, std::string(300, 'x'), 0.1f}, {9, "", -2.0f}};
  return a;
}

TEST(Evolve, VersionIsPartOfTheTextForm) {
  EXPECT_EQ(Traits<v2::Item>::Describe().ToString(), "Item@2{weight:f64,id:i64,tags:vector<string>}");
  EXPECT_EQ(Traits<v1::Item>::Describe().ToString(), "Item{id:i32,label:string,weight:f32}");
  for (const char* bad : {"Item@0{a:i32}", "Item@{a:i32}", "Item@2", "Item@x{a:i32}",
                          "Item@4294967296{a:i32}", "vector@2<i32>"}) {
    TypeDesc d;
    EXPECT_FALSE(ParseTypeDesc(bad, &d)) << bad;
  }
  v2::Item it;
  it.id = 5;
  EXPECT_EQ(RoundTrip(it).id, 5);
}

TEST(Evolve, FieldsAddedRemovedRenamedReorderedWidened) {
  Upgrade<v2::Account>::calls = 0;
  v2::Account out;
  ASSERT_EQ(Evolve(SampleAccount(), out), "");
  EXPECT_EQ(out.owner, "ada");          // renamed
  EXPECT_EQ(out.balance, -42);          // widened i32 -> i64
  EXPECT_EQ(out.overdrafts, 1);         // converted by the hook from the removed `flags`
  EXPECT_EQ(out.rate, 0.25);            // added: keeps its default
  ASSERT_EQ(out.items.size(), 3u);      // a vector of evolved structs
  EXPECT_EQ(out.items[0].id, 7);        // reordered
  EXPECT_EQ(out.items[0].weight, 1.5);  // float widened to double, exactly
  EXPECT_EQ(out.items[1].id, 8);        // after a removed 300-byte string
  EXPECT_EQ(out.items[1].weight, static_cast<double>(0.1f));
  EXPECT_EQ(out.items[2].weight, -2.0);
  EXPECT_EQ(out.items[2].tags, std::vector<std::string>{"new"});  // added to each element
  EXPECT_EQ(Upgrade<v2::Account>::calls, 1);
  EXPECT_EQ(Upgrade<v2::Account>::seen, (std::vector<std::string>{"holder", "balance", "flags", "items"}));
}

TEST(Evolve, TheHookMayRefuse) {
  v1::Account a = SampleAccount();
  a.holder = "refuse me";
  v2::Account out;
  std::string got = Evolve(a, out);
  EXPECT_NE(got.find("failed: ckpt::Upgrade<Account>::Apply refused"), std::string::npos) << got;
}

TEST(Evolve, SameShapeLoadsDirectly) {
  TypeDesc img = Traits<v2::Account>::Describe();
  ASSERT_TRUE(detail::MatchType(&img, Traits<v2::Account>::Describe(), nullptr));
  EXPECT_FALSE(img.evolve);
  EXPECT_TRUE(img.field_map.empty());
  Upgrade<v2::Account>::calls = 0;
  v2::Account a;
  a.owner = "bo";
  a.items.resize(2);
  EXPECT_EQ(RoundTrip(a).owner, "bo");
  EXPECT_EQ(Upgrade<v2::Account>::calls, 0);  // nothing to upgrade
}

TEST(Evolve, AnOlderVersionRunsTheHookEvenWithTheSameFields) {
  v1::Span s;
  s.length = 7;
  v2::Span out;
  ASSERT_EQ(Evolve(s, out), "");
  EXPECT_EQ(out.length, 700);
  v2::Span same;
  same.length = 7;
  EXPECT_EQ(RoundTrip(same).length, 7);  // version 2 to version 2: no conversion
}

TEST(Evolve, ANewerVersionIsRefused) {
  v2::Span s;
  v1::Span out;
  std::string got = Evolve(s, out);
  EXPECT_EQ(
      got,
      "refused: Span is version 2 in the image, the program's is version 0: a program cannot read a newer "
      "version of its state");
}

TEST(Evolve, ATypeChangeNeedsAHook) {
  v1::Plain p;
  p.celsius = "21.5";
  v2::Plain out;
  std::string got = Evolve(p, out);
  EXPECT_EQ(got, "refused: field 'celsius' of Plain is string in the image, the program declares f64");
  EXPECT_EQ(out.celsius, -1);

  v1::Temp t;
  t.celsius = "21.5";
  v2::Temp converted;
  ASSERT_EQ(Evolve(t, converted), "");
  EXPECT_EQ(converted.celsius, 21.5);
}

TEST(Evolve, NarrowingIsRefusedAndValuesAreRangeChecked) {
  EXPECT_FALSE(state::Compatible(Traits<double>::Describe(), Traits<float>::Describe()));
  EXPECT_TRUE(state::Compatible(Traits<float>::Describe(), Traits<double>::Describe()));
  std::vector<float> f = {1.25f, -3.0f};
  std::vector<double> d;
  ASSERT_EQ(Evolve(f, d), "");
  EXPECT_EQ(d, (std::vector<double>{1.25, -3.0}));
  std::int64_t big = std::int64_t{1} << 40;
  std::int32_t small = 0;
  EXPECT_NE(Evolve(big, small).find("failed:"), std::string::npos);
}

TEST(Evolve, OldFieldsGivesEveryFieldOfTheImage) {
  OldFields old(3);
  StringWriter w;
  Traits<std::int32_t>::Save(w, -5);
  old.Add("count", Traits<std::int32_t>::Describe(), w.str());
  EXPECT_EQ(old.version(), 3u);
  EXPECT_TRUE(old.has("count"));
  EXPECT_FALSE(old.has("other"));
  EXPECT_EQ(old.type_of("count"), "i32");
  EXPECT_EQ(old.type_of("other"), "");
  std::int64_t wide = 0;
  EXPECT_TRUE(old.get("count", wide));  // widened like any resume
  EXPECT_EQ(wide, -5);
  std::string text;
  EXPECT_FALSE(old.get("count", text));  // not a string
  std::uint8_t u = 0;
  EXPECT_FALSE(old.get("count", u));  // another signedness
  EXPECT_FALSE(old.get("other", wide));
}

TEST(Evolve, NestedInMapsAndOptionals) {
  std::map<std::string, v1::Item> m = {{"a", {1, "one", 1.0f}}, {"b", {2, "two", 2.0f}}};
  std::map<std::string, v2::Item> out;
  ASSERT_EQ(Evolve(m, out), "");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out["b"].id, 2);
  EXPECT_EQ(out["b"].weight, 2.0);
  std::optional<v1::Item> o = v1::Item{3, "three", 3.0f};
  std::optional<v2::Item> oo;
  ASSERT_EQ(Evolve(o, oo), "");
  ASSERT_TRUE(oo.has_value());
  EXPECT_EQ(oo->id, 3);
}

TEST(Evolve, TheImageIsReadToItsEndWhateverIsDropped) {
  v1::Wide w;
  w.a = 11;
  w.gone = {{"k", {{1.0, std::nullopt}, {}}}, {"l", {{2.0}}}};
  w.nested = {{{4, "four", 4.0f}}, {}};
  w.z = 12;
  std::vector<v1::Wide> many(3, w);
  std::vector<v2::Wide> out;
  ASSERT_EQ(Evolve(many, out), "");
  ASSERT_EQ(out.size(), 3u);
  for (const v2::Wide& e : out) {
    EXPECT_EQ(e.a, 11);
    EXPECT_EQ(e.z, 12);
  }
}

}  // namespace
}  // namespace ckpt
