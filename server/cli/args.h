// A small command-line parser shared by the ember subcommands: `--name value`, `--name=value`,
// boolean `--flag`, and positional arguments. Usage errors throw UsageError (exit code 2).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember::cli {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // `valued` names the options that take a value, `flags` those that do not (without "--").
  Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
       const std::set<std::string>& flags);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  // The value of an option (the last one when it was given several times).
  std::optional<std::string> get(const std::string& name) const;
  // Every value of an option that may be repeated (--lora A --lora B), in order.
  std::vector<std::string> get_all(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace ember::cli
