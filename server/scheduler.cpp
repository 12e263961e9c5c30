#include "server/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "gguf/model_files.h"
#include "model/backends/make_backend.h"
#include "model/chat/chat_template.h"
#include "model/draft_model.h"
#include "model/text/tokenizer.h"
#include "model/transformer.h"

namespace ember::server {

using Clock = std::chrono::steady_clock;

namespace {
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

// One request generating in a model's KV-cache sequence.
struct Scheduler::Slot {
  bool active = false;
  std::unique_ptr<model::Completion> completion;
  std::shared_ptr<JobSink> sink;
  int n_past = 0;          // positions of this sequence in the cache
  size_t prompt_done = 0;  // prompt tokens already through the model
  // The tokens whose keys and values the sequence's cache holds, kept after the request ends:
  // the next request that starts with the same tokens (a chat's next turn) skips them.
  std::vector<text::TokenId> cached;
  std::vector<float> lora_scales;  // the adapter scales `cached` was computed with
  size_t logprobs_sent = 0;        // completion logprobs already handed out
  Clock::time_point submitted, last_token;
  // Speculative decoding: the guesses in this step's batch after the last token, where the
  // sequence stood before them, and how many of the step's rows were used.
  std::unique_ptr<model::Drafter> drafter;
  std::vector<text::TokenId> guesses;
  int step_base = 0;
  size_t rows_used = 0;
  bool settled = true, rejected = false;
  bool draft_failed = false;  // the draft model threw (said once in the log)
};

// A loaded model: its files (mapped), backend, transformer with one cache sequence per slot.
struct Scheduler::Engine {
  ModelEntry entry;
  gguf::ModelFiles files;
  text::Tokenizer tokenizer;
  std::unique_ptr<chat::ChatTemplate> chat;  // null when the template does not parse
  chat::TemplateTraits chat_traits;          // its tool syntax and reasoning
  std::string chat_error;
  model::Backends backends;
  model::Transformer transformer;
  std::vector<Slot> slots;
  std::shared_ptr<const grammar::TokenTrie> trie;  // structured output's view of the vocabulary
  Clock::time_point last_used = Clock::now();
  // keep_alive: seconds it stays loaded once idle (negative: for ever), as the last request
  // that named one asked.
  double keep_alive_seconds = -1;
  // The draft model (--draft-model) with one cache sequence per slot, when it can guess for this
  // model; null otherwise (prompt lookup guesses).
  struct Draft {
    model::LoadedDraft loaded;
    std::vector<model::DraftModel> seqs;  // one per slot
    Draft(const Engine& target, const SchedulerOptions& o)
        : loaded(o.draft_model_path, target.tokenizer.vocab(), spec(o), target.backends,
                 target.transformer, o.cache_type, o.parallel) {
      // A new request's prompt is caught up with a step's token budget at a time.
      for (int i = 0; i < o.parallel; ++i)
        seqs.emplace_back(loaded.transformer, loaded.vocab, i, target.transformer.n_vocab(),
                          std::max(o.batch_tokens, 1));
    }
  };
  std::unique_ptr<Draft> draft;

  Engine(const ModelEntry& e, gguf::ModelFiles f, const SchedulerOptions& o)
      : entry(e),
        files(std::move(f)),
        tokenizer(text::Vocab::from_gguf(files.metadata())),
        backends(model::make_backends(spec(o))),
        transformer(files, *backends.main,
                    model::HyperParams::from_gguf(files.metadata()).context(o.n_ctx), o.cache_type,
                    o.parallel, backends.placement),
        slots(static_cast<size_t>(o.parallel)) {
    std::error_code ec;
    if (!o.loras.empty() && std::filesystem::equivalent(e.path, o.lora_model_path, ec))
      for (const auto& [path, scale] : o.loras)
        transformer.add_lora(model::LoraAdapter::open(path, files, transformer.hparams()), scale);
    if (!o.draft_model_path.empty()) try {
        draft = std::make_unique<Draft>(*this, o);
      } catch (const std::exception& err) {
        std::fprintf(stderr, "%s: no draft model, prompt lookup guesses instead (%s)\n",
                     e.id.c_str(), err.what());
      }
    try {
      chat = std::make_unique<chat::ChatTemplate>(
          chat::ChatTemplate::for_model(files.metadata(), tokenizer.vocab(), o.chat_template));
      chat_traits = chat::template_traits(*chat, tokenizer.vocab());
    } catch (const std::exception& err) {
      chat_error = err.what();
    }
  }

  static model::BackendSpec spec(const SchedulerOptions& o) {
    return {o.backend, o.device, o.threads, o.gpu_layers, o.cpu_moe_layers, o.backend_automatic};
  }
  bool busy() const {
    return std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.active; });
  }
};

Scheduler::Scheduler(ModelRegistry& registry, SchedulerOptions options)
    : registry_(registry), options_(options) {
  thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
  shutdown();
  if (thread_.joinable()) thread_.join();
}

bool Scheduler::submit(Job job, std::shared_ptr<JobSink> sink) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || static_cast<int>(queue_.size()) >= options_.max_queue) return false;
    queue_.push_back({std::move(job), std::move(sink), Clock::now()});
    stats_.queued = static_cast<int>(queue_.size());
  }
  wake_.notify_one();
  return true;
}

void Scheduler::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
}

void Scheduler::unload(const std::string& model_id, std::function<void(bool)> done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    unloads_.emplace_back(model_id, std::move(done));
  }
  wake_.notify_one();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

Scheduler::Engine* Scheduler::engine_for(const ModelEntry& entry) {
  auto it = engines_.find(entry.id);
  if (it != engines_.end() && it->second->entry.path == entry.path) return it->second.get();
  if (it != engines_.end()) {  // the id now names another file
    if (it->second->busy()) return nullptr;
    engines_.erase(it);
  }
  // Make room: unload the least recently used idle model while too many are loaded or their
  // files would not fit the memory budget (a model alone over the budget still loads).
  // A model with the draft model holds its own copy of it (its own backend and interleaved
  // weights), counted for every model since most can take it.
  std::error_code ec;
  uint64_t draft_bytes = 0;
  if (!options_.draft_model_path.empty()) {
    draft_bytes = std::filesystem::file_size(options_.draft_model_path, ec);
    if (ec) draft_bytes = 0;
  }
  auto over_limits = [&] {
    uint64_t bytes = entry.size_bytes + draft_bytes;
    for (const auto& [id, e] : engines_)
      bytes += e->entry.size_bytes + (e->draft ? draft_bytes : 0);
    return static_cast<int>(engines_.size()) >= std::max(1, options_.max_loaded_models) ||
           (options_.memory_budget_bytes > 0 && !engines_.empty() &&
            bytes > options_.memory_budget_bytes);
  };
  while (over_limits()) {
    auto victim = engines_.end();
    for (auto e = engines_.begin(); e != engines_.end(); ++e)
      if (!e->second->busy() &&
          (victim == engines_.end() || e->second->last_used < victim->second->last_used))
        victim = e;
    if (victim == engines_.end()) return nullptr;  // all busy: wait for a slot
    std::fprintf(stderr, "unloading %s (least recently used)\n", victim->first.c_str());
    engines_.erase(victim);
  }
  const auto start = Clock::now();
  auto engine = std::make_unique<Engine>(entry, gguf::ModelFiles::open(entry.path), options_);
  std::fprintf(stderr, "loaded %s in %.0f ms (context %d × %d slots%s)\n", entry.id.c_str(),
               seconds_between(start, Clock::now()) * 1000, engine->transformer.n_ctx(),
               options_.parallel, engine->draft ? ", with the draft model" : "");
  Engine* raw = engine.get();
  engines_[entry.id] = std::move(engine);
  return raw;
}

// Starts a queued job in a free slot of its model; false when none is free yet. Errors (unknown
// model, bad template, prompt too long) are reported to the sink and count as handled.
bool Scheduler::admit(Pending& p) {
  auto fail = [&](int status, const std::string& message, const std::string& code = "") {
    p.sink->on_error(status, message, code);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.errors++;
    return true;
  };
  if (p.sink->cancelled()) {  // the client went away while the request waited: drop it
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.cancelled++;
    return true;
  }
  std::optional<ModelEntry> entry = registry_.find(p.job.model);
  if (!entry) return fail(404, "model '" + p.job.model + "' is not available", "model_not_found");
  // Jobs answered here and now (load, unload, count, embed): on_start, the vectors of an
  // embedding job, then on_done with `reason`.
  auto answer_now = [&](const char* reason, int prompt_tokens,
                        std::vector<std::vector<float>>* vectors = nullptr) {
    JobSink::Start start;
    start.model_id = entry->id;
    start.prompt_tokens = prompt_tokens;
    p.sink->on_start(start);
    if (vectors) p.sink->on_embeddings(std::move(*vectors), prompt_tokens);
    model::GenerateResult result;
    result.prompt_tokens = prompt_tokens;
    result.finish_reason = reason;
    p.sink->on_done(result);
    return true;
  };
  const bool unload_only = p.job.load_only && p.job.keep_alive_seconds == 0.0;
  if (unload_only && !engines_.count(entry->id))  // nothing to unload: never load it for that
    return answer_now("unload", 0);
  Engine* engine = nullptr;
  try {
    engine = engine_for(*entry);
  } catch (const std::exception& err) {
    return fail(500, "model '" + entry->id + "' cannot be loaded: " + err.what());
  }
  if (!engine) return false;
  // Each request sets how long the model stays once idle (Ollama's keep_alive; without one,
  // ember's default: for ever), counted from now.
  engine->keep_alive_seconds = p.job.keep_alive_seconds.value_or(-1);
  engine->last_used = Clock::now();
  if (p.job.load_only) {  // Ollama's empty prompt: loaded (or, with keep_alive 0, unloaded)
    if (!unload_only || engine->busy()) return answer_now("load", 0);
    engines_.erase(entry->id);
    return answer_now("unload", 0);
  }
  // The prompt as tokens into `request`: a chat's rendered through the model's template, with
  // a forced call's grammar and the markers to show, and in `start` how the answer is read.
  // False once an error is reported.
  auto build_prompt = [&](model::GenerateRequest& request, JobSink::Start& start) {
    try {
      std::string text = p.job.prompt;
      bool special = false;
      if (p.job.chat) {
        if (!engine->chat) {
          fail(500,
               "the chat template of '" + entry->id + "' does not parse: " + engine->chat_error);
          return false;
        }
        chat::PreparedChat prepared =
            chat::prepare_chat(*engine->chat, engine->chat_traits, p.job.chat_request);
        text = std::move(prepared.prompt);
        if (prepared.grammar) request.grammar = std::move(prepared.grammar);
        for (const std::string& marker : prepared.markers)
          if (const text::TokenId id = engine->tokenizer.vocab().find(marker); id >= 0)
            request.shown_tokens.push_back(id);
        start.output = prepared.output;
        start.output_prefix = std::move(prepared.output_prefix);
        special = true;
      }
      request.prompt = engine->tokenizer.encode_prompt(text, special);
    } catch (const chat::jinja::Error& err) {
      fail(400, std::string("the chat template failed: ") + err.what());
      return false;
    } catch (const grammar::SchemaError& err) {
      fail(400, std::string("'tools': ") + err.what(), "unsupported_parameter");
      return false;
    } catch (const std::exception& err) {
      fail(400, err.what());
      return false;
    }
    return true;
  };
  if (p.job.count_only) {  // a slot is not needed: render and tokenize only
    model::GenerateRequest counted;
    JobSink::Start unused;
    if (!build_prompt(counted, unused)) return true;
    return answer_now("stop", static_cast<int>(counted.prompt.size()));
  }
  if (std::none_of(engine->slots.begin(), engine->slots.end(),
                   [](const Slot& s) { return !s.active; }))
    return false;

  if (p.job.embed) {  // run at once, in the first free slot's cache sequence
    const int slot = static_cast<int>(std::find_if(engine->slots.begin(), engine->slots.end(),
                                                   [](const Slot& s) { return !s.active; }) -
                                      engine->slots.begin());
    std::vector<std::vector<float>> vectors;
    int tokens = 0;
    std::string why;
    if (!embed(*engine, slot, p.job, vectors, tokens, why, [&] { return p.sink->cancelled(); }))
      return fail(400, why);
    engine->last_used = Clock::now();
    return answer_now("stop", tokens, &vectors);
  }
  model::GenerateRequest request = p.job.generation;
  JobSink::Start start;
  if (!build_prompt(request, start)) return true;
  if (request.prompt.empty()) return fail(400, "the prompt is empty");

  const int n_ctx = engine->transformer.n_ctx();
  if (static_cast<int>(request.prompt.size()) >= n_ctx)
    return fail(400,
                "the prompt has " + std::to_string(request.prompt.size()) +
                    " tokens but the context holds " + std::to_string(n_ctx) +
                    " (start the server with a larger --ctx)",
                "context_length_exceeded");

  // Adapter scales: the request's ({id, scale}, others 0), else every adapter at its own.
  std::vector<float> lora_scales;
  if (engine->transformer.lora_count() > 0)
    for (const auto& [path, scale] : options_.loras)
      lora_scales.push_back(p.job.lora ? 0.0f : scale);
  if (p.job.lora) {
    if (lora_scales.empty())
      return fail(400, "model '" + entry->id +
                           "' has no LoRA adapters (start the server with --model FILE --lora "
                           "ADAPTER)");
    for (const auto& [id, scale] : *p.job.lora) {
      if (id < 0 || id >= static_cast<int>(lora_scales.size()))
        return fail(400, "lora id " + std::to_string(id) + " does not exist (the server has " +
                             std::to_string(lora_scales.size()) + " adapter(s), ids from 0)");
      lora_scales[id] = scale;
    }
  }

  // The free slot whose cache shares the longest prefix with this prompt (0 when none does);
  // a cache computed with other adapter scales shares nothing.
  Slot* best = nullptr;
  size_t reuse = 0;
  for (Slot& s : engine->slots) {
    if (s.active) continue;
    size_t common = 0;
    while (s.lora_scales == lora_scales && common < s.cached.size() &&
           common < request.prompt.size() && s.cached[common] == request.prompt[common])
      ++common;
    if (!best || common > reuse) best = &s, reuse = common;
  }
  // The last prompt token always goes through the model: its logits give the first token.
  reuse = std::min(reuse, request.prompt.size() - 1);
  Slot& slot = *best;
  std::vector<text::TokenId> cached = std::move(slot.cached);
  cached.resize(reuse);
  slot = Slot();
  slot.cached = std::move(cached);
  slot.lora_scales = lora_scales;
  if (!lora_scales.empty())
    engine->transformer.set_lora_scales(static_cast<int>(&slot - engine->slots.data()),
                                        lora_scales);
  slot.n_past = static_cast<int>(reuse);
  slot.prompt_done = reuse;
  slot.active = true;
  // Guessing: as the request says, else the server's default for greedy requests (unless
  // --speculative set it: 8 ahead with a draft model, 4 with prompt lookup).
  const int server_default = options_.speculative >= 0 ? options_.speculative
                             : engine->draft           ? 8
                                                       : 4;
  if (request.speculative == kSpeculativeOn)
    request.speculative = server_default > 0 ? server_default : 4;
  else if (request.speculative < 0)
    request.speculative = request.sampling.temperature <= 0 ? server_default : 0;
  slot.drafter = std::make_unique<model::Drafter>(
      request.speculative,
      engine->draft ? engine->draft->seqs[&slot - engine->slots.data()].fn() : model::DraftFn{});
  if (request.grammar) {  // the vocabulary's trie, built by the first structured request
    if (!engine->trie) engine->trie = std::make_shared<grammar::TokenTrie>(engine->tokenizer);
    request.trie = engine->trie;
  }
  try {
    slot.completion = std::make_unique<model::Completion>(engine->tokenizer, std::move(request));
  } catch (const std::exception& err) {  // a grammar too ambiguous to start
    slot.active = false;
    return fail(400, err.what(), "invalid_grammar");
  }
  slot.sink = p.sink;
  slot.submitted = p.submitted;
  engine->last_used = Clock::now();
  start.model_id = entry->id;
  start.prompt_tokens = static_cast<int>(slot.completion->request().prompt.size());
  start.cached_tokens = static_cast<int>(reuse);
  p.sink->on_start(start);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.requests++;
  stats_.prompt_tokens += slot.completion->request().prompt.size();
  stats_.cached_prompt_tokens += reuse;
  return true;
}

void Scheduler::run() {
  while (true) {
    std::vector<Pending> incoming;
    bool any_active = false;
    for (auto& [id, e] : engines_) any_active |= e->busy();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!any_active && queue_.empty() && !stopping_) {
        // Idle: sleep until work comes, the next model's keep_alive runs out or (while models
        // are loaded) a second passes, to notice files that went away.
        lock.unlock();
        const auto next_expiry = expire_idle();
        lock.lock();
        auto ready = [&] { return !queue_.empty() || stopping_ || !unloads_.empty(); };
        std::optional<Clock::time_point> until = next_expiry;
        if (!engines_.empty()) {
          const auto soon = Clock::now() + std::chrono::seconds(1);
          if (!until || soon < *until) until = soon;
        }
        if (until)
          wake_.wait_until(lock, *until, ready);
        else
          wake_.wait(lock, ready);
      }
      for (auto& [id, done] : unloads_) {
        auto it = engines_.find(id);
        const bool busy = it != engines_.end() && it->second->busy();
        if (!busy && it != engines_.end()) engines_.erase(it);
        done(!busy);
      }
      unloads_.clear();
      if (stopping_) {
        for (Pending& p : queue_)
          p.sink->on_error(503, "the server is shutting down", "server_shutting_down");
        queue_.clear();
        stats_.queued = 0;
        lock.unlock();
        for (auto& [id, e] : engines_)
          for (Slot& s : e->slots)
            if (s.active) {
              std::string rest = s.completion->finish("stop");
              if (!rest.empty()) s.sink->on_text(rest, {});
              s.sink->on_done(s.completion->result());
              release(*e, s);
            }
        return;
      }
      incoming.assign(std::make_move_iterator(queue_.begin()),
                      std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    // Admit in arrival order; what cannot start yet goes back to the queue's front.
    std::vector<Pending> waiting;
    for (Pending& p : incoming) {
      try {
        if (!admit(p)) waiting.push_back(std::move(p));
      } catch (const std::exception& e) {  // a bug must fail one request, not the server
        p.sink->on_error(500, std::string("internal error: ") + e.what(), "");
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.insert(queue_.begin(), std::make_move_iterator(waiting.begin()),
                    std::make_move_iterator(waiting.end()));
      stats_.queued = static_cast<int>(queue_.size());
      publish_loaded();
    }
    bool stepped = false;
    for (auto& [id, e] : engines_)
      if (e->busy()) {
        step(*e);
        stepped = true;
      }
    // keep_alive runs out for idle models while others are busy too (checked once a second).
    if (stepped && Clock::now() - last_expiry_check_ > std::chrono::seconds(1)) {
      last_expiry_check_ = Clock::now();
      expire_idle();
    }
    if (!stepped && !waiting.empty()) {
      // Nothing can run (e.g. every model slot is held by a busy model): wait briefly.
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(20));
    }
    int active = 0;
    for (auto& [id, e] : engines_)
      for (const Slot& s : e->slots) active += s.active;
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.active = active;
  }
}

bool Scheduler::embed(Engine& engine, int slot, const Job& job,
                      std::vector<std::vector<float>>& vectors, int& tokens, std::string& error,
                      const std::function<bool()>& cancelled) {
  model::Transformer& t = engine.transformer;
  const int n_embd = t.hparams().n_embd;
  if (job.embed_dimensions > 0 && job.embed_dimensions != n_embd) {
    error = "'dimensions' must be the model's own, " + std::to_string(n_embd) +
            " (ember does not shorten embeddings)";
    return false;
  }
  // llama.cpp's <arch>.pooling_type: 1 mean, 3 last; none: mean. ember runs every model
  // causally, so the first token's state (2, cls) would be the same for every input, and
  // per-token (0) or rank (4) outputs are not embeddings of the input: refused.
  const std::string arch(engine.files.metadata().get_string("general.architecture").value_or(""));
  const int64_t pooling = engine.files.metadata().get_int(arch + ".pooling_type").value_or(1);
  if (pooling != 1 && pooling != 3) {
    error = "model '" + engine.entry.id + "' asks for pooling type " + std::to_string(pooling) +
            " (" + arch + ".pooling_type), which ember does not support (mean and last token)";
    return false;
  }
  std::vector<std::vector<int32_t>> inputs = job.embed_ids;
  for (const std::string& text : job.embed_texts)
    inputs.push_back(engine.tokenizer.encode(text, true, false));
  // The job runs on the scheduler thread while other requests wait: bounded.
  size_t total = 0;
  for (const auto& ids : inputs) total += ids.size();
  if (total > kMaxEmbeddingTokens) {
    error = "the inputs have " + std::to_string(total) + " tokens; one request embeds at most " +
            std::to_string(kMaxEmbeddingTokens) + " (split it)";
    return false;
  }
  engine.slots[slot].cached.clear();  // its cache sequence is overwritten
  tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (cancelled()) {
      error = "the client went away";
      return false;
    }
    const std::vector<int32_t>& ids = inputs[i];
    if (ids.empty()) {
      error = "input " + std::to_string(i) + " is empty";
      return false;
    }
    if (static_cast<int>(ids.size()) > t.n_ctx()) {
      error = "input " + std::to_string(i) + " has " + std::to_string(ids.size()) +
              " tokens but the context holds " + std::to_string(t.n_ctx());
      return false;
    }
    for (int32_t id : ids)
      if (id < 0 || id >= t.n_vocab()) {
        error = "input " + std::to_string(i) + " has token id " + std::to_string(id) +
                ", outside the vocabulary";
        return false;
      }
    std::vector<double> sum(static_cast<size_t>(n_embd), 0.0);
    for (size_t first = 0; first < ids.size(); first += options_.batch_tokens) {
      const size_t last = std::min(ids.size(), first + static_cast<size_t>(options_.batch_tokens));
      model::Batch batch;
      batch.hidden_states = true;
      for (size_t j = first; j < last; ++j) {
        const bool wanted = pooling == 3 ? j + 1 == ids.size() : true;
        batch.add(ids[j], static_cast<int32_t>(j), slot, wanted);
      }
      const std::vector<float> states = t.decode(batch);
      for (size_t r = 0; r < batch.logits_for.size(); ++r)
        for (int k = 0; k < n_embd; ++k) sum[k] += states[r * n_embd + k];
    }
    const double count = pooling == 3 ? 1.0 : static_cast<double>(ids.size());
    double norm = 0;
    for (double& v : sum) norm += (v /= count) * v;
    norm = std::sqrt(norm);
    std::vector<float> vector(static_cast<size_t>(n_embd));
    for (int k = 0; k < n_embd; ++k) vector[k] = static_cast<float>(norm > 0 ? sum[k] / norm : 0);
    vectors.push_back(std::move(vector));
    tokens += static_cast<int>(ids.size());
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.requests++;
  stats_.prompt_tokens += tokens;
  return true;
}

std::optional<Clock::time_point> Scheduler::expire_idle() {
  std::optional<Clock::time_point> next;
  for (auto it = engines_.begin(); it != engines_.end();) {
    Engine& e = *it->second;
    if (e.busy()) {
      ++it;
      continue;
    }
    // Its file was deleted (here, or by another replica sharing the volume, seen by a rescan),
    // replaced, or the id now names another file: free its memory (the next request loads what
    // is there now). A model the last scan merely missed while its file is still there (a
    // network volume's hiccup) stays.
    const std::optional<ModelEntry> now = registry_.find(it->first);
    std::error_code ec;
    const bool gone = now ? now->path != e.entry.path || now->modified != e.entry.modified ||
                                now->size_bytes != e.entry.size_bytes
                          : !std::filesystem::exists(e.entry.path, ec) && !ec;
    if (gone) {
      std::fprintf(stderr, "unloading %s (its file is gone or was replaced)\n", it->first.c_str());
      it = engines_.erase(it);
      continue;
    }
    if (e.keep_alive_seconds < 0) {
      ++it;
      continue;
    }
    const auto expiry = e.last_used + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(e.keep_alive_seconds));
    if (Clock::now() >= expiry) {
      std::fprintf(stderr, "unloading %s (keep_alive ran out)\n", it->first.c_str());
      it = engines_.erase(it);
      continue;
    }
    if (!next || expiry < *next) next = expiry;
    ++it;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  publish_loaded();
  return next;
}

void Scheduler::publish_loaded() {
  stats_.loaded.clear();
  stats_.loaded_models.clear();
  for (auto& [id, e] : engines_) {
    stats_.loaded.push_back(id);
    double expires = 0;  // stays loaded
    if (e->keep_alive_seconds >= 0) {
      const double idle_for = e->busy() ? 0 : seconds_between(e->last_used, Clock::now());
      expires = static_cast<double>(std::time(nullptr)) + e->keep_alive_seconds - idle_for;
    }
    stats_.loaded_models.push_back({id, e->entry.size_bytes, expires});
  }
}

void Scheduler::release(Engine& engine, Slot& slot) {
  slot.active = false;
  slot.completion.reset();
  slot.sink.reset();
  engine.last_used = Clock::now();
}

// One forward pass for every active slot of `engine`: each generating slot's last token, then
// prompt chunks of the slots still reading theirs, within the step's token budget.
void Scheduler::step(Engine& engine) {
  model::Batch batch;
  std::vector<int> logits_owner;  // slot index of each logits row
  int budget = std::max(options_.batch_tokens, options_.parallel);
  for (size_t i = 0; i < engine.slots.size(); ++i) {
    Slot& s = engine.slots[i];
    if (!s.active) continue;
    if (s.sink->cancelled()) {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.cancelled++;
      release(engine, s);
      continue;
    }
    if (s.prompt_done < s.completion->request().prompt.size()) continue;
    s.step_base = s.n_past;
    s.rows_used = 0;
    s.settled = false;
    s.rejected = false;
    batch.add(s.completion->last_token(), s.n_past, static_cast<int32_t>(i), true);
    logits_owner.push_back(static_cast<int>(i));
    s.cached.push_back(s.completion->last_token());
    s.n_past++;
    --budget;
    // Guesses of what follows, verified in the same pass (model/speculative.h).
    const model::GenerateRequest& r = s.completion->request();
    const int room = std::min({r.max_tokens - s.completion->result().completion_tokens - 1,
                               engine.transformer.n_ctx() - s.n_past, budget});
    s.guesses.clear();
    if (room > 0 && r.speculative > 0) {
      s.guesses = s.drafter->guess(s.completion->history(), room);
      if (!s.drafter->error().empty() && !s.draft_failed) {  // guessing is off for the request
        s.draft_failed = true;
        std::fprintf(stderr, "the draft model failed, no more guesses for this request: %s\n",
                     s.drafter->error().c_str());
      }
    }
    for (text::TokenId g : s.guesses) {
      batch.add(g, s.n_past, static_cast<int32_t>(i), true);
      logits_owner.push_back(static_cast<int>(i));
      s.cached.push_back(g);
      s.n_past++;
      --budget;
    }
  }
  for (size_t i = 0; i < engine.slots.size() && budget > 0; ++i) {
    Slot& s = engine.slots[i];
    if (!s.active) continue;
    const std::vector<text::TokenId>& prompt = s.completion->request().prompt;
    if (s.prompt_done >= prompt.size()) continue;
    const size_t take = std::min<size_t>(prompt.size() - s.prompt_done, budget);
    for (size_t j = 0; j < take; ++j) {
      const bool last = s.prompt_done + 1 == prompt.size();
      batch.add(prompt[s.prompt_done], s.n_past, static_cast<int32_t>(i), last);
      if (last) logits_owner.push_back(static_cast<int>(i));
      s.cached.push_back(prompt[s.prompt_done]);
      s.prompt_done++;
      s.n_past++;
    }
    budget -= static_cast<int>(take);
  }
  if (batch.size() == 0) return;

  std::vector<float> logits;
  try {
    logits = engine.transformer.decode(batch);
  } catch (const std::exception& err) {
    for (Slot& s : engine.slots) s.cached.clear();  // what the caches hold is unknown now
    for (int i : logits_owner) {
      if (!engine.slots[i].active) continue;  // a slot with guesses owns several rows
      engine.slots[i].sink->on_error(500, std::string("inference failed: ") + err.what(), "");
      release(engine, engine.slots[i]);
    }
    return;
  }
  const size_t n_vocab = static_cast<size_t>(engine.transformer.n_vocab());
  const auto now = Clock::now();
  uint64_t generated = 0;
  double ttft = 0, token_time = 0;
  uint64_t ttft_n = 0, token_n = 0;
  std::vector<float> row(n_vocab);
  uint64_t drafted = 0, accepted = 0;
  // A generating slot's rows are its last token's, then one per guess. The sequence keeps what
  // was used: a guess's row is used only while every guess before it was the token chosen
  // (model/speculative.h); the cache positions past that are dropped before anything else
  // (a released slot's `cached` is reused by the next request).
  auto settle = [&](Slot& s) {
    if (s.settled) return;
    s.settled = true;
    const size_t unused = s.guesses.size() + 1 - s.rows_used;
    s.n_past -= static_cast<int>(unused);
    s.cached.resize(s.cached.size() - unused);
    s.drafter->outcome(s.guesses.size(), s.rows_used - 1);
    drafted += s.guesses.size();
    accepted += s.rows_used - 1;
  };
  for (size_t r = 0; r < logits_owner.size(); ++r) {
    Slot& s = engine.slots[logits_owner[r]];
    // Released by an earlier row of this step, or past a wrong guess.
    if (!s.active || s.rejected) continue;
    if (!s.settled) {
      if (s.rows_used > 0 && s.guesses[s.rows_used - 1] != s.completion->last_token()) {
        s.rejected = true;  // a wrong guess: its row and the following ones are not used
        settle(s);
        continue;
      }
      ++s.rows_used;
      if (s.rows_used > s.guesses.size()) settle(s);  // its last row
    }
    std::copy(logits.begin() + r * n_vocab, logits.begin() + (r + 1) * n_vocab, row.begin());
    const size_t before = s.completion->result().tokens.size();
    std::string text;
    try {
      text = s.completion->step(row);
    } catch (const std::exception& err) {  // the request's grammar cannot be followed
      settle(s);
      s.sink->on_error(400, err.what(), "invalid_grammar");
      release(engine, s);
      continue;
    }
    if (s.completion->result().tokens.size() > before) {
      ++generated;
      if (before == 0) {
        ttft += seconds_between(s.submitted, now);
        ++ttft_n;
      } else {
        token_time += seconds_between(s.last_token, now);
        ++token_n;
      }
      s.last_token = now;
    }
    const int n_past = s.settled ? s.n_past : s.step_base + static_cast<int>(s.rows_used);
    if (!s.completion->finished() && n_past >= engine.transformer.n_ctx()) {
      text += s.completion->finish("length");  // the context is full
    }
    std::vector<TokenInfo> infos;
    const auto& lps = s.completion->result().logprobs;
    if (!text.empty() || s.completion->finished()) {
      for (; s.logprobs_sent < lps.size(); ++s.logprobs_sent) {
        const model::TokenLogprob& lp = lps[s.logprobs_sent];
        TokenInfo info{engine.tokenizer.piece(lp.token), lp.logprob, {}};
        for (auto [id, l] : lp.top) info.top.emplace_back(engine.tokenizer.piece(id), l);
        infos.push_back(std::move(info));
      }
    }
    if (!text.empty() || !infos.empty()) s.sink->on_text(text, std::move(infos));
    if (s.completion->finished()) {
      settle(s);
      s.sink->on_done(s.completion->result());
      release(engine, s);
    }
  }
  for (Slot& s : engine.slots)
    if (s.active) settle(s);
  engine.last_used = now;
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.steps++;
  stats_.batched_tokens += batch.size();
  stats_.draft_tokens += drafted;
  stats_.accepted_tokens += accepted;
  stats_.completion_tokens += generated;
  stats_.ttft_seconds_sum += ttft;
  stats_.ttft_count += ttft_n;
  stats_.token_seconds_sum += token_time;
  stats_.token_count += token_n;
}

}  // namespace ember::server
