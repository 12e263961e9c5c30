// The CPU quota of a container: cgroup v2 cpu.max and v1 CFS files, found from /proc/self/cgroup
// in a fake cgroup tree.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/cpu_quota.h"

namespace fs = std::filesystem;
using ember::server::cgroup_cpu_limit;
using ember::server::cpus_from_cfs;
using ember::server::cpus_from_cpu_max;

namespace {

struct FakeCgroups {
  fs::path root = fs::temp_directory_path() / ("ember-cgroup-" + std::to_string(::getpid()));
  FakeCgroups() { fs::remove_all(root); }
  ~FakeCgroups() { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
};

}  // namespace

TEST(CpuQuota, ParsesCpuMaxAndCfs) {
  EXPECT_DOUBLE_EQ(cpus_from_cpu_max("200000 100000\n"), 2.0);
  EXPECT_DOUBLE_EQ(cpus_from_cpu_max("150000 100000"), 1.5);
  EXPECT_EQ(cpus_from_cpu_max("max 100000\n"), 0);
  EXPECT_EQ(cpus_from_cpu_max(""), 0);
  EXPECT_EQ(cpus_from_cpu_max("junk"), 0);
  EXPECT_EQ(cpus_from_cpu_max("100000 0"), 0);
  EXPECT_DOUBLE_EQ(cpus_from_cfs("50000\n", "100000\n"), 0.5);
  EXPECT_EQ(cpus_from_cfs("-1\n", "100000\n"), 0);
  EXPECT_EQ(cpus_from_cfs("", ""), 0);
}

TEST(CpuQuota, CgroupV2InsideAContainerAndOnTheHost) {
  FakeCgroups fake;
  // A container (cgroup namespace): its own limit at the root.
  fake.write("cpu.max", "300000 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_limit(fake.root, "0::/\n"), 3.0);
  // A process in a nested cgroup: the tightest limit on the way up counts.
  fake.write("kubepods/pod1/cpu.max", "max 100000\n");
  fake.write("kubepods/pod1/c1/cpu.max", "250000 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_limit(fake.root, "0::/kubepods/pod1/c1\n"), 2.5);
  fake.write("kubepods/cpu.max", "100000 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_limit(fake.root, "0::/kubepods/pod1/c1\n"), 1.0);
}

TEST(CpuQuota, CgroupV1AndNoLimit) {
  FakeCgroups fake;
  fake.write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "400000\n");
  fake.write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  const char* v1 = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n";
  EXPECT_DOUBLE_EQ(cgroup_cpu_limit(fake.root, v1), 4.0);
  EXPECT_EQ(cgroup_cpu_limit(fake.root, "4:cpu,cpuacct:/other\n"), 0);  // nothing there
  EXPECT_EQ(cgroup_cpu_limit(fake.root, ""), 0);
  EXPECT_EQ(cgroup_cpu_limit(fake.root, "garbage without colons"), 0);
  EXPECT_GE(ember::server::usable_cpus(), 1);
}
