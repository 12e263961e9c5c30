// A shared library opened at run time (dlopen), closed when the object goes: how the device
// backends reach the Vulkan loader and the OpenCL ICD loader without linking them, so ember runs
// (CPU only) on machines that have neither.
#pragma once

#include <dlfcn.h>

namespace ember {

class DynamicLibrary {
 public:
  // Opens the first of `names` that loads; valid() says whether one did.
  explicit DynamicLibrary(std::initializer_list<const char*> names) {
    for (const char* n : names)
      // Never unloaded: some drivers crash when their loader goes away before the process does.
      if ((handle_ = dlopen(n, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))) break;
  }
  ~DynamicLibrary() {
    if (handle_) dlclose(handle_);
  }
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;

  bool valid() const { return handle_ != nullptr; }
  // The symbol `name` as a function pointer of type F, or nullptr.
  template <typename F>
  F get(const char* name) const {
    return handle_ ? reinterpret_cast<F>(dlsym(handle_, name)) : nullptr;
  }

 private:
  void* handle_ = nullptr;
};

}  // namespace ember
