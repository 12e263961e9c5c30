#include "server/pull/names.h"

#include <algorithm>
#include <map>
#include <regex>

#include "gguf/model_files.h"

namespace ember::pull {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Two spellings of one quantisation compare equal: case, '-' or '_', "FP16" or "F16".
std::string comparable(const std::string& quant) {
  std::string s = upper(quant);
  std::replace(s.begin(), s.end(), '-', '_');
  if (s == "FP16") return "F16";
  if (s == "FP32") return "F32";
  return s;
}

// Preference for the automatic choice, by groups of bits: 4-bit first (Q4_K_M is what Ollama and
// llama.cpp's -hf default to), then more bits (better output, bigger), then fewer, then none.
// Within a group, the order of the list; a quantisation not listed comes after its group's.
const std::vector<std::vector<std::string>>& preference_groups() {
  static const std::vector<std::vector<std::string>> groups = {
      {"Q4_K_M", "UD-Q4_K_XL", "Q4_K_XL", "Q4_K_L", "Q4_K_S", "IQ4_XS", "Q4_0", "IQ4_NL", "Q4_1"},
      {"Q5_K_M", "UD-Q5_K_XL", "Q5_K_L", "Q5_K_S", "Q5_0", "Q5_1"},
      {"Q6_K", "UD-Q6_K_XL", "Q6_K_L"},
      {"Q8_0", "UD-Q8_K_XL"},
      {"Q3_K_L", "Q3_K_M", "UD-Q3_K_XL", "IQ3_M", "Q3_K_S", "IQ3_S", "IQ3_XS", "IQ3_XXS"},
      {"Q2_K", "UD-Q2_K_XL", "Q2_K_L", "Q2_K_S", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS"},
      {"IQ1_M", "IQ1_S"},
      {"F16", "BF16", "F32"}};
  return groups;
}

int rank(const std::string& quant) {
  const auto& groups = preference_groups();
  if (quant.empty()) return int(groups.size()) * 100;  // no quantisation in the name: last
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].size(); ++i)
      if (comparable(groups[g][i]) == comparable(quant)) return int(g * 100 + i);
  // Unlisted: after its group, found by the digit after the Q ("IQ4_KS" → the 4-bit group).
  static const std::regex bits("^(UD-)?I?Q([1-8])");
  std::smatch m;
  if (std::regex_search(quant, m, bits)) {
    const char digit = m[2].str()[0];
    for (size_t g = 0; g + 1 < groups.size(); ++g)
      if (groups[g][0].find(std::string("Q") + digit) != std::string::npos)
        return int(g * 100 + 99);
  }
  return int(groups.size() - 1) * 100 + 99;
}

bool is_gguf(const std::string& name) {
  const std::string l = lower(name);
  return l.size() > 5 && l.ends_with(".gguf");
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

PullRequest parse_model_spec(const std::string& spec) {
  PullRequest r;
  std::string s = spec;
  for (const char* scheme : {"https://", "http://"})
    if (lower(s).rfind(scheme, 0) == 0) s.erase(0, std::string(scheme).size());
  for (const char* host : {"hf.co/", "huggingface.co/", "www.huggingface.co/"})
    if (lower(s).rfind(host, 0) == 0) s.erase(0, std::string(host).size());
  const size_t colon = s.find(':');
  r.repo = s.substr(0, colon);
  if (colon == std::string::npos) return r;
  const std::string rest = s.substr(colon + 1);
  if (is_gguf(rest))
    r.filename = rest;
  else if (lower(rest) != "latest")  // Ollama's default tag: the automatic choice
    r.quant = rest;
  return r;
}

void validate(const PullRequest& r) {
  static const std::regex repo("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$");
  static const std::regex file("^([A-Za-z0-9._-]+/)*[A-Za-z0-9._+-]+\\.gguf$", std::regex::icase);
  static const std::regex revision("^[A-Za-z0-9._/-]{1,128}$");
  static const std::regex quant("^[A-Za-z0-9_-]{1,32}$");
  auto has_dotdot = [](const std::string& s) {
    return s.find("..") != std::string::npos || s.find("//") != std::string::npos;
  };
  if (!std::regex_match(r.repo, repo) || has_dotdot(r.repo))
    throw PullRejected(
        "'model' must be a Hugging Face repo id ORG/NAME (letters, digits, '.', '_', '-'), "
        "optionally with :FILE.gguf or :QUANT, not '" +
        r.repo + "'");
  if (!r.filename.empty() && (!std::regex_match(r.filename, file) || has_dotdot(r.filename)))
    throw PullRejected(
        "'filename' must be a .gguf file name inside the repo (no '..', no leading '/'), not '" +
        r.filename + "'");
  if (!r.quant.empty() && !std::regex_match(r.quant, quant))
    throw PullRejected("the quantisation after ':' must be a name such as Q4_K_M or Q8_0, not '" +
                       r.quant + "'");
  if (!std::regex_match(r.revision, revision) || has_dotdot(r.revision))
    throw PullRejected("'revision' is not a valid branch, tag or commit: '" + r.revision + "'");
}

std::string quant_tag(const std::string& filename) {
  static const std::regex pattern(
      "(^|[^a-z0-9])((ud-)?(i?q[1-8](_[a-z0-9]+)*|bf16|fp16|f16|fp32|f32))(?=$|[^a-z0-9])");
  std::string name = lower(filename);
  if (name.ends_with(".gguf")) name.resize(name.size() - 5);
  std::string found;
  for (std::sregex_iterator it(name.begin(), name.end(), pattern), end; it != end; ++it)
    found = (*it)[2].str();
  found = upper(found);
  if (found == "FP16") return "F16";
  if (found == "FP32") return "F32";
  return found;
}

std::vector<std::string> split_set(const std::string& filename) {
  const auto split = gguf::parse_split_name(filename);
  if (!split) return {filename};
  std::vector<std::string> parts;
  for (int i = 1; i <= split->count; ++i)
    parts.push_back(i == split->index ? filename
                                      : gguf::split_path(split->prefix, i, split->count));
  return parts;
}

std::vector<Candidate> candidates(const std::vector<std::string>& listing) {
  std::vector<Candidate> out;
  std::map<std::string, std::map<int, std::string>> sets;  // "prefix/count" → index → name
  std::map<std::string, int> set_counts;
  for (const std::string& f : listing) {
    if (!is_gguf(f) || lower(f).find("mmproj") != std::string::npos) continue;
    if (const auto split = gguf::parse_split_name(f)) {
      const std::string key = split->prefix + "/" + std::to_string(split->count);
      sets[key][split->index] = f;
      set_counts[key] = split->count;
    } else {
      out.push_back({{f}, quant_tag(f)});
    }
  }
  for (const auto& [key, parts] : sets) {
    if (int(parts.size()) != set_counts[key]) continue;  // a part is missing: not offered
    Candidate c;
    for (const auto& [index, name] : parts) c.files.push_back(name);
    c.quant = quant_tag(c.files.front());
    out.push_back(std::move(c));
  }
  return out;
}

Choice choose_file(const std::vector<std::string>& listing, const std::string& quant) {
  std::vector<Candidate> all = candidates(listing);
  // Best first: preferred quantisation, then a single file before a split set, then by name.
  std::stable_sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    const int ra = rank(a.quant), rb = rank(b.quant);
    if (ra != rb) return ra < rb;
    if ((a.files.size() > 1) != (b.files.size() > 1)) return a.files.size() == 1;
    return a.files.front() < b.files.front();
  });
  Choice choice;
  auto offered_except = [&](const std::string& q) {
    std::vector<std::string> out;
    for (const Candidate& c : all) {
      const std::string name = c.quant.empty() ? c.files.front() : c.quant;
      if (comparable(c.quant) != comparable(q) &&
          std::find(out.begin(), out.end(), name) == out.end())
        out.push_back(name);
    }
    return out;
  };
  if (all.empty()) {
    choice.reason = "no GGUF file";
    return choice;
  }
  std::vector<const Candidate*> matching;
  if (!quant.empty()) {
    for (const Candidate& c : all)
      if (comparable(c.quant) == comparable(quant)) matching.push_back(&c);
    if (matching.empty())  // "Q4_K_XL" finds unsloth's "UD-Q4_K_XL"
      for (const Candidate& c : all)
        if (comparable(c.quant) == "UD_" + comparable(quant)) matching.push_back(&c);
    if (matching.empty()) {
      choice.alternatives = offered_except("");
      choice.reason = "no " + upper(quant) + " file; it offers " + join(choice.alternatives);
      return choice;
    }
  } else {
    for (const Candidate& c : all)
      if (rank(c.quant) == rank(all.front().quant)) matching.push_back(&c);
  }
  const Candidate& best = *matching.front();
  choice.files = best.files;
  choice.quant = best.quant;
  choice.alternatives = offered_except(best.quant);
  const std::string q = best.quant.empty() ? "no known quantisation" : best.quant;
  if (!quant.empty())
    choice.reason = q + ", as asked";
  else if (comparable(best.quant) == "Q4_K_M")
    choice.reason = "Q4_K_M";
  else if (best.quant.empty())
    choice.reason = "no quantisation in the file names; the first GGUF file";
  else
    choice.reason = "no Q4_K_M file; " + q + " is the closest";
  // Ties: the same quantisation in several files (other models, a single file and a split set).
  std::vector<std::string> others;
  for (const Candidate* c : matching)
    if (c != &best) others.push_back(c->files.front() + (c->files.size() > 1 ? " (split)" : ""));
  if (!others.empty())
    choice.reason += "; also " + q + ": " + join(others) + " (ask for one with its file name)";
  if (!choice.alternatives.empty())
    choice.reason += "; other quantisations: " + join(choice.alternatives) +
                     " (ask for one with ORG/REPO:QUANT)";
  return choice;
}

}  // namespace ember::pull
