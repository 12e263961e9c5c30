// `ember gpu-info [--json]`: the CPU's features and kernel level, every Vulkan device and every
// OpenCL device with what ember cares about, and which backend `serve` would use and why.
// Works on a machine without Vulkan or OpenCL and says so.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_features.h"
#include "server/backend_choice.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {
namespace {

using json = nlohmann::ordered_json;

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MiB", bytes / 1048576.0);
  return buf;
}

json vulkan_json(const vulkan::Inventory& inv) {
  json devices = json::array();
  for (const auto& d : inv.devices) {
    json heaps = json::array();
    for (const auto& h : d.heaps)
      heaps.push_back({{"bytes", h.size}, {"device_local", h.device_local}});
    devices.push_back({{"index", d.index},
                       {"name", d.name},
                       {"type", d.type},
                       {"driver", d.driver},
                       {"api_version", d.api_version},
                       {"driver_version", d.driver_version},
                       {"vendor_id", d.vendor_id},
                       {"device_id", d.device_id},
                       {"heaps", heaps},
                       {"subgroup_size", d.subgroup_size},
                       {"max_shared_memory", d.max_shared_memory},
                       {"max_storage_buffer_range", d.max_storage_buffer_range},
                       {"max_workgroup_invocations", d.max_workgroup_invocations},
                       {"storage_16bit", d.storage_16bit},
                       {"storage_8bit", d.storage_8bit},
                       {"float16", d.float16},
                       {"int8", d.int8}});
  }
  return {{"loader", inv.loader}, {"error", inv.error}, {"devices", devices}};
}

json opencl_json(const opencl::Inventory& inv) {
  json devices = json::array();
  for (const auto& d : inv.devices)
    devices.push_back({{"index", d.index},
                       {"platform", d.platform},
                       {"platform_version", d.platform_version},
                       {"name", d.name},
                       {"type", d.type},
                       {"version", d.version},
                       {"c_version", d.c_version},
                       {"driver_version", d.driver_version},
                       {"extensions", d.extensions},
                       {"compute_units", d.compute_units},
                       {"global_memory", d.global_memory},
                       {"max_allocation", d.max_allocation},
                       {"local_memory", d.local_memory},
                       {"host_unified_memory", d.host_unified_memory}});
  return {{"loader", inv.loader}, {"error", inv.error}, {"devices", devices}};
}

}  // namespace

int run_gpu_info(const std::vector<std::string>& argv) {
  Args args(argv, {"backend", "device"}, {"json"});
  const vulkan::Inventory vk = vulkan::list_devices();
  const opencl::Inventory cl = opencl::list_devices();
  // As serve reads it: the flag, else EMBER_BACKEND, else auto.
  const char* env_backend = std::getenv("EMBER_BACKEND");
  const std::string requested =
      args.get("backend").value_or(env_backend && *env_backend ? env_backend : "auto");
  if (requested != "auto" && requested != "cpu" && requested != "vulkan" && requested != "opencl")
    throw UsageError("--backend must be auto, cpu, vulkan or opencl, not '" + requested + "'");
  server::BackendChoice choice;
  std::string choice_error;
  try {
    int device = -1;
    try {
      device = std::stoi(args.get("device").value_or("-1"));
    } catch (const std::exception&) {
      throw UsageError("--device takes a device number (see the list)");
    }
    choice = server::choose_backend(requested, vk, cl, device);
  } catch (const std::invalid_argument& e) {
    choice_error = e.what();
  }
  if (args.has("json")) {
    json out = {
        {"cpu",
         {{"features", cpu::describe_cpu_features()},
          {"kernel_level", cpu::isa_name(cpu::best_isa())}}},
        {"vulkan", vulkan_json(vk)},
        {"opencl", opencl_json(cl)},
        {"serve", choice_error.empty() ? json{{"requested", requested},
                                              {"backend", choice.backend},
                                              {"device", choice.device},
                                              {"device_index", choice.device_index},
                                              {"reason", choice.reason}}
                                       : json{{"requested", requested}, {"error", choice_error}}}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("CPU: kernel level %s; features: %s\n", cpu::isa_name(cpu::best_isa()),
              cpu::describe_cpu_features().c_str());
  std::printf("\nVulkan: %s\n", vk.devices.empty() ? vk.error.c_str() : "");
  for (const auto& d : vk.devices) {
    std::printf("  [%d] %s (%s), Vulkan %s, driver %s\n", d.index, d.name.c_str(), d.type.c_str(),
                d.api_version.c_str(), d.driver.empty() ? "?" : d.driver.c_str());
    std::printf("      heaps:");
    for (const auto& h : d.heaps)
      std::printf(" %s%s", mib(h.size).c_str(), h.device_local ? " (device-local)" : "");
    std::printf(
        "\n      subgroup %u, shared memory %u KiB, max buffer range %s, fp16 storage %s, "
        "int8 storage %s, fp16 math %s, int8 math %s\n",
        d.subgroup_size, d.max_shared_memory / 1024, mib(d.max_storage_buffer_range).c_str(),
        d.storage_16bit ? "yes" : "no", d.storage_8bit ? "yes" : "no", d.float16 ? "yes" : "no",
        d.int8 ? "yes" : "no");
  }
  std::printf("\nOpenCL: %s\n", cl.devices.empty() ? cl.error.c_str() : "");
  for (const auto& d : cl.devices) {
    std::printf("  [%d] %s (%s) on %s\n", d.index, d.name.c_str(), d.type.c_str(),
                d.platform.c_str());
    std::printf("      %s, %s, %u compute units, %s global (%s per buffer), %s local%s\n",
                d.version.c_str(), d.c_version.c_str(), d.compute_units,
                mib(d.global_memory).c_str(), mib(d.max_allocation).c_str(),
                mib(d.local_memory).c_str(), d.host_unified_memory ? ", shares host memory" : "");
    std::printf("      fp16 %s, int8 dot product %s, sub-groups %s\n",
                d.has_extension("cl_khr_fp16") ? "yes" : "no",
                d.has_extension("cl_khr_integer_dot_product") ? "yes" : "no",
                d.has_extension("cl_khr_subgroups") ? "yes" : "no");
    // None of those extensions is needed: the kernels are plain OpenCL C 1.2.
    std::printf("      %s\n", d.is_gpu() ? "a GPU: --backend opencl takes the first one; auto "
                                           "does when no Vulkan GPU exists"
                                         : "not a GPU: used with --backend opencl --device N, or "
                                           "by --backend opencl when no GPU exists");
  }
  if (choice_error.empty())
    std::printf("\nserve --backend %s would use: %s on %s (%s)\n", requested.c_str(),
                choice.backend.c_str(), choice.device.c_str(), choice.reason.c_str());
  else
    std::printf("\nserve --backend %s: %s\n", requested.c_str(), choice_error.c_str());
  return 0;
}

}  // namespace ember::cli
