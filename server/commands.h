// The ember subcommands. Each takes the arguments after its name and returns the exit code
// (0 ok, 1 failure, 2 usage); cli::UsageError escaping one is reported as a usage error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ember::cli {

int run_inspect(const std::vector<std::string>& args);
int run_tokenize(const std::vector<std::string>& args);
int run_detokenize(const std::vector<std::string>& args);
int run_template(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
int run_perplexity(const std::vector<std::string>& args);
int run_chat(const std::vector<std::string>& args);

// Shared by the commands: "1,2,3" → ids (UsageError on junk); threads to use by default.
std::vector<int32_t> parse_ids(const std::string& list);
int default_threads();

}  // namespace ember::cli
