#include "hakmem/config.h"

#include <string.h>

#include <map>
#include <string>

#include "gtest/gtest.h"
#include "hakmem/platform.h"

namespace hakmem {
namespace {

std::map<std::string, std::string>* g_env;
std::string* g_log;

const char* FakeGetenv(const char* name) {
  auto it = g_env->find(name);
  return it == g_env->end() ? nullptr : it->second.c_str();
}

void CaptureLog(const char* data, size_t len) { g_log->append(data, len); }

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_env = &env_;
    g_log = &log_;
    platform::SetLogSinkForTesting(&CaptureLog);
    // Marks the configuration loaded: otherwise the first GetOption of the
    // process loads the real environment over what Load() put there (a
    // test that ran first, shuffled, then read the defaults).
    config_internal::ResetToDefaults();
  }
  void TearDown() override {
    platform::SetLogSinkForTesting(nullptr);
    config_internal::ResetToDefaults();
  }
  void Load() { config_internal::LoadFromEnvironment(&FakeGetenv); }

  std::map<std::string, std::string> env_;
  std::string log_;
};

// A warning about a value longer than the line buffer is cut, but still
// ends its line (the next message starts on a line of its own).
TEST_F(ConfigTest, AWarningAboutAVeryLongValueStillEndsItsLine) {
  env_["HAKMEM_SUPERSLAB_TTL_SEC"] = std::string(2000, '7');
  Load();
  EXPECT_EQ(GetOption(Option::kSuperslabTtlSec), 60u);
  ASSERT_GE(log_.size(), 4u);
  EXPECT_EQ(log_.substr(log_.size() - 4), "...\n");
  EXPECT_EQ(log_.find("HAKMEM_SUPERSLAB_TTL_SEC='777"), std::string("hakmem: warning: ").size());
}

TEST_F(ConfigTest, DefaultsMatchPhase9) {
  Load();
  EXPECT_EQ(GetOption(Option::kSuperslabMaxCached), 256u);
  EXPECT_EQ(GetOption(Option::kSuperslabMaxMemoryMb), 512u);
  EXPECT_EQ(GetOption(Option::kSuperslabTtlSec), 60u);
  EXPECT_EQ(GetOption(Option::kSuperslabResidentMb), 64u);
  EXPECT_EQ(GetOption(Option::kSuperslabDecayMs), 1000u);
  EXPECT_EQ(GetOption(Option::kStats), 0u);
  EXPECT_EQ(log_, "");
}

TEST_F(ConfigTest, ValidValuesAreTaken) {
  env_["HAKMEM_SUPERSLAB_MAX_CACHED"] = "12";
  env_["HAKMEM_SUPERSLAB_MAX_MEMORY_MB"] = "0";
  env_["HAKMEM_SUPERSLAB_TTL_SEC"] = "3600";
  env_["HAKMEM_SUPERSLAB_DECAY_MS"] = "0";
  env_["HAKMEM_STATS"] = "1";
  Load();
  EXPECT_EQ(GetOption(Option::kSuperslabDecayMs), 0u);
  EXPECT_EQ(GetOption(Option::kSuperslabMaxCached), 12u);
  EXPECT_EQ(GetOption(Option::kSuperslabMaxMemoryMb), 0u);
  EXPECT_EQ(GetOption(Option::kSuperslabTtlSec), 3600u);
  EXPECT_EQ(GetOption(Option::kStats), 1u);
  EXPECT_EQ(log_, "");
}

struct BadCase {
  const char* value;
  const char* reason;
};

TEST_F(ConfigTest, BadValuesWarnOnceAndFallBack) {
  const BadCase cases[] = {
      {"abc", "is not a non-negative decimal integer"},
      {"-5", "is not a non-negative decimal integer"},
      {"12x", "is not a non-negative decimal integer"},
      {" 12", "is not a non-negative decimal integer"},
      {"99999999999999999999999", "is not a non-negative decimal integer"},
      {"", "is empty"},
      {"2000000", "is out of range"},
  };
  for (const BadCase& c : cases) {
    log_.clear();
    env_["HAKMEM_SUPERSLAB_MAX_CACHED"] = c.value;
    Load();
    EXPECT_EQ(GetOption(Option::kSuperslabMaxCached), 256u) << c.value;
    const std::string expected = std::string("hakmem: warning: ") +
                                 "HAKMEM_SUPERSLAB_MAX_CACHED='" + c.value +
                                 "' " + c.reason + "; using the default 256\n";
    EXPECT_EQ(log_, expected);
  }
}

TEST_F(ConfigTest, BadValueOfOneOptionLeavesOthersAlone) {
  env_["HAKMEM_SUPERSLAB_TTL_SEC"] = "soon";
  env_["HAKMEM_SUPERSLAB_MAX_CACHED"] = "7";
  Load();
  EXPECT_EQ(GetOption(Option::kSuperslabTtlSec), 60u);
  EXPECT_EQ(GetOption(Option::kSuperslabMaxCached), 7u);
  EXPECT_NE(log_.find("HAKMEM_SUPERSLAB_TTL_SEC='soon'"), std::string::npos);
  EXPECT_EQ(log_.find("MAX_CACHED"), std::string::npos);
}

TEST_F(ConfigTest, DecayLongerThanAnHourFallsBack) {
  env_["HAKMEM_SUPERSLAB_DECAY_MS"] = "3600001";
  Load();
  EXPECT_EQ(GetOption(Option::kSuperslabDecayMs), 1000u);
  EXPECT_NE(log_.find("HAKMEM_SUPERSLAB_DECAY_MS='3600001' is out of range"),
            std::string::npos)
      << log_;
}

TEST_F(ConfigTest, BooleanOptionsRejectOtherNumbers) {
  env_["HAKMEM_STATS"] = "2";
  Load();
  EXPECT_EQ(GetOption(Option::kStats), 0u);
  EXPECT_NE(log_.find("HAKMEM_STATS='2' is out of range"), std::string::npos);
}

TEST_F(ConfigTest, SettersValidateRange) {
  EXPECT_TRUE(SetOption(Option::kSuperslabMaxCached, 0));
  EXPECT_EQ(GetOption(Option::kSuperslabMaxCached), 0u);
  EXPECT_FALSE(SetOption(Option::kStats, 5));
  EXPECT_EQ(GetOption(Option::kStats), 0u);
}

TEST(ParseUnsignedTest, Limits) {
  uint64_t v = 0;
  EXPECT_TRUE(config_internal::ParseUnsigned("18446744073709551615", 0,
                                             UINT64_MAX, &v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_FALSE(config_internal::ParseUnsigned("18446744073709551616", 0,
                                              UINT64_MAX, &v));
  EXPECT_FALSE(config_internal::ParseUnsigned(nullptr, 0, 10, &v));
  EXPECT_FALSE(config_internal::ParseUnsigned("+1", 0, 10, &v));
  EXPECT_FALSE(config_internal::ParseUnsigned("11", 0, 10, &v));
  EXPECT_FALSE(config_internal::ParseUnsigned("4", 5, 10, &v));
}

}  // namespace
}  // namespace hakmem
