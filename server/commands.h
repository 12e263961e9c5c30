// The ember subcommands. Each takes the arguments after its name and returns the exit code
// (0 ok, 1 failure, 2 usage); cli::UsageError escaping one is reported as a usage error.
#pragma once

#include <string>
#include <vector>

namespace ember::cli {

int run_inspect(const std::vector<std::string>& args);
int run_tokenize(const std::vector<std::string>& args);
int run_detokenize(const std::vector<std::string>& args);
int run_template(const std::vector<std::string>& args);

}  // namespace ember::cli
