// The `ember` command: dispatches to a subcommand and turns its errors into one line on stderr
// and an exit code (0 ok, 1 failure, 2 usage).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "server/cli/args.h"
#include "server/cli/commands.h"
#include "server/version.h"

namespace {

struct Command {
  const char* name;
  const char* synopsis;
  int (*run)(const std::vector<std::string>&);
};

const Command kCommands[] = {
    {"serve",
     "serve [--bind HOST:PORT] [--model-dirs D1:D2] [--model FILE] [--api-key K] [--threads N]\n"
     "           [--ctx N] [--cache-type f16|q8_0|f32] [--parallel N] [--max-queue N]\n"
     "           [--max-loaded-models N]\n"
     "           [--cors-origins O1,O2] [--max-body-mb N] [--request-timeout S] [--idle-timeout "
     "S]\n"
     "           [--backend auto|cpu|vulkan|opencl] [--device N] [--lora FILE[:SCALE]]...\n"
     "           [--chat-template NAME | --chat-template-file FILE] [--speculative N]\n"
     "           [--draft-model FILE]\n"
     "           [--batch N] [--memory-budget-mb N] [--max-downloads N] [--drain-timeout S]\n"
     "           [--rescan-interval S] [--no-watch] [--public-metrics]\n"
     "           OpenAI-compatible HTTP server (default bind 127.0.0.1:11435)",
     ember::cli::run_serve},
    {"list", "list [--short] [--model-dirs D1:D2]   models found by discovery",
     ember::cli::run_list},
    {"discover", "discover [--model-dirs D1:D2]   rescan and print what was found",
     ember::cli::run_discover},
    {"probe",
     "probe ID [--model-dirs D1:D2] [--backend B] [--device N]   load a model, run one token, "
     "report time and memory",
     ember::cli::run_probe},
    {"pull",
     "pull ORG/REPO[:FILE|:QUANT] [--revision R] [--dir ./models]   download a GGUF from "
     "Hugging Face",
     ember::cli::run_pull},
    {"gpu-info",
     "gpu-info [--json] [--backend B] [--device N]   CPU features, Vulkan and OpenCL devices, "
     "which backend "
     "serve would use",
     ember::cli::run_gpu_info},
    {"inspect",
     "inspect FILE.gguf [--json] [--full-arrays]   metadata and tensor table\n"
     "  inspect --memory FILE.gguf [--ctx N] [--parallel N] [--cache-type T]   memory ember serve\n"
     "           needs for it",
     ember::cli::run_inspect},
    {"tokenize", "tokenize --model FILE (--text TEXT | --file F) [--no-bos] [--special]",
     ember::cli::run_tokenize},
    {"detokenize", "detokenize --model FILE --ids 1,2,3 [--special]", ember::cli::run_detokenize},
    {"template",
     "template (--model FILE | --builtin NAME | --template-file T) [--messages M.json] [--context "
     "C.json]\n"
     "           [--add-generation-prompt] [--print-source]   render a chat template",
     ember::cli::run_template},
    {"generate",
     "generate --model FILE --prompt TEXT [--chat] [--system T] [--max-tokens N] [--temperature "
     "T]\n"
     "           [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--stats]\n"
     "           [--speculative N (guess N tokens ahead from the text so far; same output)]\n"
     "           [--draft-model FILE (a small model with the same vocabulary guesses instead;\n"
     "           8 ahead unless --speculative says)]\n"
     "           [--lora FILE[:SCALE]]... [--backend auto|cpu|vulkan|opencl] [--device N]\n"
     "           [--cache-type f16|q8_0|f32 (the KV cache's values; q8_0 halves its memory)]",
     ember::cli::run_generate},
    {"chat",
     "chat --model FILE [--system TEXT] [--temperature T] [--max-tokens N] [--seed S]\n"
     "           [--backend auto|cpu|vulkan|opencl] [--device N] [--cache-type f16|q8_0|f32]",
     ember::cli::run_chat},
    {"perplexity",
     "perplexity --model FILE --file TEXT.txt [--ctx N] [--backend auto|cpu|vulkan|opencl] "
     "[--device N]\n"
     "           [--cache-type f16|q8_0|f32]",
     ember::cli::run_perplexity},
    {"eval",
     "eval --model FILE --tokens 1,2,3 --logits-out OUT.bin [--batch N] [--cache-type "
     "f16|q8_0|f32] "
     "[--lora FILE[:SCALE]]...\n"
     "           [--backend auto|cpu|vulkan|opencl] [--device N]",
     ember::cli::run_eval},
    {"bench",
     "bench kernels [--types Q4_0,Q4_K,...|all] [--threads N] [--tokens N] [--isa L]\n"
     "                [--backend cpu|vulkan|opencl] [--device N]\n"
     "  bench e2e --model FILE [-p 512] [-n 128] [-t 2] [--backend B] [--device N]\n"
     "            [--n-gpu-layers N] [--cpu-moe] [--n-cpu-moe N] [--cache-type T] [--profile]\n"
     "            [--no-interleave] [--batch N (N sequences in lockstep, as N server streams)]\n"
     "            prompt/generation "
     "tokens/s, "
     "GB/s, memory\n"
     "  bench grammar --model FILE   the structured-output token mask per step\n"
     "  bench speculative --model FILE [--draft-model FILE] [--speculative 4,8] [-n 128] [--chat]\n"
     "            greedy generation with and without guessing ahead\n"
     "  bench make-model --type Q4_0|Q8_0|Q4_K_M [--shape 1b|7b] --out FILE   random model",
     ember::cli::run_bench},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: ember COMMAND [OPTIONS]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %s\n", c.synopsis);
  std::fprintf(out, "  --version\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage(args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::printf("ember %s\n", ember::kVersion);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (args[0] != c.name) continue;
    if (args.size() == 2 && (args[1] == "--help" || args[1] == "-h")) {  // one command's usage
      std::printf("usage: ember %s\n", c.synopsis);
      return 0;
    }
    try {
      return c.run({args.begin() + 1, args.end()});
    } catch (const ember::cli::UsageError& e) {
      std::fprintf(stderr, "ember %s: %s (see ember --help)\n", c.name, e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ember %s: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "ember: unknown command '%s' (see ember --help)\n", args[0].c_str());
  return 2;
}
