// How many CPUs this process may really use: the affinity mask, further limited by a cgroup CPU
// quota (a container's or Kubernetes pod's `limits.cpu`). std::thread::hardware_concurrency()
// counts the host's CPUs, so a pod limited to 2 CPUs on a 64-core node would start 64 threads
// and spend its time throttled.
#pragma once

#include <string>
#include <string_view>

namespace ember::server {

// cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD" when unlimited): the CPUs the quota
// allows (QUOTA / PERIOD), or 0 when unlimited or unreadable.
double cpus_from_cpu_max(std::string_view text);
// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` (quota -1: unlimited → 0).
double cpus_from_cfs(std::string_view quota_us, std::string_view period_us);

// The smallest CPU quota on the way from this process's cgroup up to the root, read from
// `cgroup_root` (the cgroup file system, v2 or v1) given the contents of /proc/self/cgroup;
// 0 when there is none.
double cgroup_cpu_limit(const std::string& cgroup_root, std::string_view proc_self_cgroup);

// The CPUs this process may use: the affinity mask's count, at most the cgroup quota rounded up
// (/sys/fs/cgroup, /proc/self/cgroup); at least 1.
int usable_cpus();

}  // namespace ember::server
