#include "server/cpu_quota.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace ember::server {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

bool to_long(std::string_view s, long& out) {
  s = trim(s);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

// The smaller positive limit (0: none).
double tighter(double a, double b) {
  return a <= 0 ? b : b <= 0 ? a : std::min(a, b);
}

}  // namespace

double cpus_from_cpu_max(std::string_view text) {
  text = trim(text);
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return 0;
  long quota = 0, period = 0;
  if (!to_long(text.substr(0, space), quota) || !to_long(text.substr(space + 1), period))
    return 0;  // "max PERIOD": unlimited
  return quota > 0 && period > 0 ? double(quota) / double(period) : 0;
}

double cpus_from_cfs(std::string_view quota_us, std::string_view period_us) {
  long quota = 0, period = 0;
  if (!to_long(quota_us, quota) || !to_long(period_us, period)) return 0;
  return quota > 0 && period > 0 ? double(quota) / double(period) : 0;
}

double cgroup_cpu_limit(const std::string& cgroup_root, std::string_view proc_self_cgroup) {
  double limit = 0;
  // Each line is "ID:CONTROLLERS:PATH"; v2 has one line "0::PATH". Inside a container's cgroup
  // namespace PATH is "/" and the container's own limits are at the root.
  std::stringstream lines{std::string(proc_self_cgroup)};
  for (std::string line; std::getline(lines, line);) {
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    std::vector<std::string> bases;
    if (controllers.empty()) {
      bases = {cgroup_root};
    } else {
      std::stringstream names(controllers);
      bool cpu = false;
      for (std::string n; std::getline(names, n, ',');) cpu |= n == "cpu";
      if (!cpu) continue;
      bases = {cgroup_root + "/" + controllers, cgroup_root + "/cpu"};
    }
    for (const std::string& base : bases) {
      // From the process's cgroup up to the root: any level may carry the quota.
      for (std::string p = path;; p = p.substr(0, p.rfind('/'))) {
        const std::string dir = base + (p.empty() || p == "/" ? "" : p);
        if (controllers.empty())
          limit = tighter(limit, cpus_from_cpu_max(read_file(dir + "/cpu.max")));
        else
          limit = tighter(limit, cpus_from_cfs(read_file(dir + "/cpu.cfs_quota_us"),
                                               read_file(dir + "/cpu.cfs_period_us")));
        if (p.empty() || p == "/") break;
      }
    }
  }
  return limit;
}

int usable_cpus() {
  int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = std::max(1, CPU_COUNT(&set));
  const double quota = cgroup_cpu_limit("/sys/fs/cgroup", read_file("/proc/self/cgroup"));
  if (quota > 0) n = std::min(n, std::max(1, static_cast<int>(std::ceil(quota - 1e-9))));
  return n;
}

}  // namespace ember::server
