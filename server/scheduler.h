// The scheduler owns the loaded models and runs inference on its own thread, so the event loop
// never waits for it. Continuous batching: every active request of a model advances together,
// one token each per forward pass; a new request joins at the next step (its prompt in chunks
// that share the step's token budget with the others' next tokens). `parallel` requests run
// per model, a bounded queue waits behind them, and a request whose client went away frees its
// slot at the next step. A slot keeps its cache after a request: the next request that starts
// with the same tokens (a chat's next turn) takes that slot and skips them. Models load on first
// use and the least recently used idle one is unloaded when more than `max_loaded_models` would be
// loaded or their files would exceed the memory budget.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/chat/chat_request.h"
#include "model/generate.h"
#include "server/model_registry.h"

namespace ember::server {

struct SchedulerOptions {
  int parallel = 4;  // requests generating at once per model
  // Speculative decoding (model/speculative.h): tokens guessed per step for greedy requests that
  // do not say (`speculative` in the body); sampled requests guess only when they ask.
  int speculative = -1;  // −1: 8 for a model with a draft model, else 4
  // --draft-model: a small model that guesses instead of prompt lookup (model/draft_model.h), for
  // every model whose vocabulary it shares; empty: none.
  std::string draft_model_path;
  int n_ctx = 4096;  // context per request (clipped to the model's training context)
  model::CacheType cache_type = model::CacheType::kF16;  // --cache-type: the KV cache's values
  int threads = 2;                 // compute threads per loaded model (CPU backend)
  std::string backend = "cpu";     // "cpu" or "vulkan" (backend_choice.h decides)
  int device = -1;                 // the Vulkan device, as gpu-info numbers them
  int gpu_layers = -1;             // --n-gpu-layers (−1: all)
  int cpu_moe_layers = 0;          // --n-cpu-moe / --cpu-moe (model/backends/make_backend.h)
  bool backend_automatic = false;  // --backend auto: a device that fails to open means the CPU
  int max_queue = 64;              // requests waiting beyond the parallel ones
  int batch_tokens = 256;          // tokens per forward pass (prompt chunks share this budget)
  int max_loaded_models = 2;
  uint64_t memory_budget_bytes = 0;  // 0: none; else loaded model files stay under this
  std::string chat_template;         // replaces every model's own template when set (its source)
  // LoRA adapters (--lora FILE[:SCALE]) and the one model file they pair with.
  std::string lora_model_path;
  std::vector<std::pair<std::string, float>> loras;
};

// A token's log-probability with its text, for the API's logprobs fields.
struct TokenInfo {
  std::string token;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;
};

// What the API side asks for: a raw `prompt`, or (chat) messages rendered through the model's
// template with tools and their options.
// GenerateRequest::speculative as a request leaves it for the scheduler: absent (the server's
// default for greedy requests, off for sampled ones), or `true` (the server's default).
inline constexpr int kSpeculativeDefault = -1, kSpeculativeOn = -2;

struct Job {
  std::string model;
  bool chat = false;
  std::string prompt;
  chat::ChatRequest chat_request;
  // Per-request adapter scales as llama-server takes them ({id, scale}; adapters not named run
  // at 0); absent: every adapter at its --lora scale.
  std::optional<std::vector<std::pair<int, float>>> lora;
  model::GenerateRequest generation;  // sampling, max_tokens, stop, logprobs (no prompt yet)
  // How long the model stays loaded once idle (Ollama's keep_alive): seconds, negative for
  // ever, 0 to unload when this request is done; absent: as it was (for ever by default).
  std::optional<double> keep_alive_seconds;
  // Only load the model (Ollama's empty prompt), or with keep_alive 0 unload it: on_start and an
  // empty on_done with finish_reason "load" or "unload".
  bool load_only = false;
  // Only render and tokenize the prompt (Anthropic's count_tokens): on_start and an empty
  // on_done whose prompt_tokens is the count.
  bool count_only = false;
  // Embeddings instead of generation: each input's pooled final hidden states (mean, or the
  // last token's where the file's <arch>.pooling_type says so), L2-normalised, go to
  // JobSink::on_embeddings. Inputs are texts or token ids (ids_inputs).
  bool embed = false;
  std::vector<std::string> embed_texts;
  std::vector<std::vector<int32_t>> embed_ids;
  int embed_dimensions = 0;  // > 0: the request's `dimensions`, which must be the model's
};

// How the scheduler reports back, on its own thread. Implementations hand the data to the
// event loop; they must not block.
class JobSink {
 public:
  virtual ~JobSink() = default;
  // `cached_tokens` of the prompt were found in the cache (a previous request's prefix). A chat's
  // answer is read with `output` (reasoning, tool calls), after `output_prefix` (a forced
  // call's opening, which is in the prompt rather than in the generated text).
  struct Start {
    std::string model_id;
    int prompt_tokens = 0, cached_tokens = 0;
    chat::ChatOutputOptions output;
    std::string output_prefix;
  };
  virtual void on_start(const Start& start) {}
  virtual void on_text(const std::string& text, std::vector<TokenInfo> logprobs) = 0;
  virtual void on_done(const model::GenerateResult& result) = 0;
  // An embedding job's vectors (one per input, in order) and the tokens they took; on_done
  // follows.
  virtual void on_embeddings(std::vector<std::vector<float>> vectors, int prompt_tokens) {}
  // `code` is the OpenAI-style error code ("context_length_exceeded", ...), empty for the
  // status's default.
  virtual void on_error(int status, const std::string& message, const std::string& code) = 0;
  virtual bool cancelled() const = 0;
};

// A model in memory, for /api/ps.
struct LoadedModel {
  std::string id;
  uint64_t size_bytes = 0;
  // When it unloads if still idle (system clock, Unix seconds); 0: it stays loaded.
  double expires_at = 0;
};

struct SchedulerStats {
  int queued = 0, active = 0;
  std::vector<std::string> loaded;
  std::vector<LoadedModel> loaded_models;
  uint64_t requests = 0, prompt_tokens = 0, completion_tokens = 0, cancelled = 0, errors = 0;
  uint64_t cached_prompt_tokens = 0;  // prompt tokens whose cache entries were reused
  double ttft_seconds_sum = 0;        // time to first token, summed over requests
  uint64_t ttft_count = 0;
  double token_seconds_sum = 0;  // time per generated token after the first, summed
  uint64_t token_count = 0;
  uint64_t steps = 0, batched_tokens = 0;
  uint64_t draft_tokens = 0, accepted_tokens = 0;  // speculative decoding: guessed, guessed right
};

class Scheduler {
 public:
  Scheduler(ModelRegistry& registry, SchedulerOptions options);
  ~Scheduler();

  // Queues a job; false when the queue is full (the caller answers 503 with Retry-After).
  bool submit(Job job, std::shared_ptr<JobSink> sink);
  // Ends every request: active ones finish with what they have, queued ones get an error.
  void shutdown();
  SchedulerStats stats() const;
  // Unloads a model unless a request uses it; `done(unloaded)` runs on the scheduler thread
  // (true also when it was not loaded).
  void unload(const std::string& model_id, std::function<void(bool)> done);
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Engine;
  struct Slot;
  struct Pending {
    Job job;
    std::shared_ptr<JobSink> sink;
    std::chrono::steady_clock::time_point submitted;
  };

  void run();
  bool admit(Pending& pending);  // false: no free slot for its model yet
  Engine* engine_for(const ModelEntry& entry);
  void step(Engine& engine);
  void release(Engine& engine, Slot& slot);
  // Unloads idle models whose keep_alive ran out; returns when the next one would.
  std::optional<std::chrono::steady_clock::time_point> expire_idle();
  void publish_loaded();  // stats_.loaded*, from engines_ (mutex_ held)
  // Runs an embedding job in `slot`'s cache sequence (its cached prefix is lost); false and a
  // message when an input cannot be embedded.
  bool embed(Engine& engine, int slot, const Job& job, std::vector<std::vector<float>>& vectors,
             int& tokens, std::string& error, const std::function<bool()>& cancelled);
  static constexpr size_t kMaxEmbeddingTokens = 16384;  // per request (it runs while others wait)

  ModelRegistry& registry_;
  SchedulerOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::vector<std::pair<std::string, std::function<void(bool)>>> unloads_;
  bool stopping_ = false;
  std::map<std::string, std::unique_ptr<Engine>> engines_;   // scheduler thread only
  std::chrono::steady_clock::time_point last_expiry_check_;  // scheduler thread only
  SchedulerStats stats_;                                     // under mutex_
  std::thread thread_;
};

}  // namespace ember::server
