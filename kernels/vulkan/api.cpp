#include "kernels/vulkan/api.h"

#include <stdexcept>

#include "kernels/dynamic_library.h"

namespace ember::vulkan {
namespace {

const char* result_name(VkResult r) {
  switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY (the device has too little memory for this)";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST (the driver reset the device)";
    case VK_ERROR_MEMORY_MAP_FAILED:
      return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
      return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
      return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_TIMEOUT:
      return "VK_TIMEOUT";
    default:
      return "a Vulkan error";
  }
}

template <typename F>
void load(F& fn, PFN_vkVoidFunction raw, const char* name) {
  if (!raw) throw std::runtime_error(std::string("the Vulkan driver lacks ") + name);
  fn = reinterpret_cast<F>(raw);
}

}  // namespace

void check(VkResult result, const std::string& what) {
  if (result != VK_SUCCESS)
    throw std::runtime_error(what + " failed: " + result_name(result) + " (" +
                             std::to_string(static_cast<int>(result)) + ")");
}

bool Api::load_global(std::string& error) {
  library_ = std::make_shared<DynamicLibrary>(
      std::initializer_list<const char*>{"libvulkan.so.1", "libvulkan.so"});
  if (!library_->valid()) {
    error = "no Vulkan loader (libvulkan.so.1) on this machine";
    return false;
  }
  vkGetInstanceProcAddr = library_->get<PFN_vkGetInstanceProcAddr>("vkGetInstanceProcAddr");
  if (!vkGetInstanceProcAddr) {
    error = "libvulkan.so.1 has no vkGetInstanceProcAddr";
    return false;
  }
  // vkEnumerateInstanceVersion is missing from 1.0 loaders: left null there.
  vkCreateInstance =
      reinterpret_cast<PFN_vkCreateInstance>(vkGetInstanceProcAddr(nullptr, "vkCreateInstance"));
  vkEnumerateInstanceVersion = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(
      vkGetInstanceProcAddr(nullptr, "vkEnumerateInstanceVersion"));
  if (!vkCreateInstance) {
    error = "the Vulkan loader has no vkCreateInstance";
    return false;
  }
  return true;
}

Instance::Instance(Api& api) : api_(api) {
  uint32_t version = VK_API_VERSION_1_0;
  if (api.vkEnumerateInstanceVersion) api.vkEnumerateInstanceVersion(&version);
  if (version < VK_API_VERSION_1_1)
    throw std::runtime_error("the Vulkan loader supports only Vulkan 1.0; ember needs 1.1");
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "ember";
  app.apiVersion = VK_API_VERSION_1_2;
  VkInstanceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  info.pApplicationInfo = &app;
  check(api.vkCreateInstance(&info, nullptr, &instance_),
        "vkCreateInstance (is a Vulkan driver installed?)");
  api.load_instance(instance_);
}

Instance::~Instance() {
  if (instance_ && api_.vkDestroyInstance) api_.vkDestroyInstance(instance_, nullptr);
}

void Api::load_instance(VkInstance instance) {
#define EMBER_VK_LOAD(name) load(name, vkGetInstanceProcAddr(instance, #name), #name);
  EMBER_VK_INSTANCE(EMBER_VK_LOAD)
#undef EMBER_VK_LOAD
}

void Api::load_device(VkDevice device) {
#define EMBER_VK_LOAD(name) load(name, vkGetDeviceProcAddr(device, #name), #name);
  EMBER_VK_DEVICE(EMBER_VK_LOAD)
#undef EMBER_VK_LOAD
}

}  // namespace ember::vulkan
