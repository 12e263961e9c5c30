// Constructs the backends a command or the server runs a model on: the one asked for by name
// and, when the model is split between a device and the CPU, the CPU backend beside it.
#pragma once

#include <memory>
#include <string>

#include "model/backend.h"
#include "model/transformer.h"

namespace ember::model {

struct BackendSpec {
  std::string kind = "cpu";  // "cpu", "vulkan" or "opencl"
  int device = -1;           // the device of that API as gpu-info numbers it (−1: the first GPU)
  int threads = 1;           // CPU: worker threads (also the host side of a split placement)
  int gpu_layers = -1;       // --n-gpu-layers: the last N layers on the device (−1: all)
  int cpu_moe_layers = 0;    // --n-cpu-moe N: routed experts of the first N layers on the CPU;
                             // --cpu-moe: every layer (a large number)
  bool automatic = false;    // chosen by --backend auto: a device that cannot be opened falls
                             // back to the CPU (with a note on stderr) instead of failing
  // CPU: weights rewritten into their kernels' interleaved layout (kernels/cpu/kernels.h) at
  // first use; off here or with EMBER_INTERLEAVE=0 (the mapped layout throughout).
  bool interleave = true;
};

struct Backends {
  std::unique_ptr<Backend> main;  // what the Transformer is given
  std::unique_ptr<Backend> host;  // the CPU side of a split placement, else null
  Placement placement;            // for the Transformer; refers to `host`
};

// Throws std::invalid_argument for an unknown kind, std::runtime_error when the device cannot be
// opened (saying why) and the spec is not automatic.
Backends make_backends(const BackendSpec& spec);

// Backends for a draft model (draft_model.h) run in turn with `target`'s (made from `spec`):
// each backend holds one KV cache, so the draft needs its own. CPU backends share the target's
// thread pools (two pools would spin against each other); a device is opened again with the
// target's placement, its memory less the target's share (`target_device_bytes`,
// Transformer::device_bytes). Throws std::runtime_error when the device cannot be opened.
Backends make_draft_backends(const BackendSpec& spec, const Backends& target,
                             uint64_t target_device_bytes);

}  // namespace ember::model
