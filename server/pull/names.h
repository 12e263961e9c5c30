// Names in a pull: what the user asked for (ORG/REPO, :FILE or :QUANT, the hf.co/ forms of
// Ollama and llama.cpp's -hf), the checks that keep files inside the models directory, the
// quantisation written in a file name, split sets, and the automatic choice from a repo listing.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace ember::pull {

struct PullRequest {
  std::string repo;      // ORG/NAME
  std::string filename;  // a file of the repo; empty: choose one from the repo's listing
  std::string quant;     // without filename: the quantisation wanted ("Q8_0"); empty: automatic
  std::string revision = "main";
};

// A request that cannot start (bad names): HTTP 400 (exit code 2 in the CLI) with this message.
class PullRejected : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Parses what a user types: "ORG/REPO", "ORG/REPO:FILE.gguf", "ORG/REPO:QUANT" (Q4_K_M,
// UD-Q4_K_XL, ...; ":latest" is the automatic choice), each optionally behind "hf.co/",
// "huggingface.co/" or "https://huggingface.co/". Does not validate (see validate()).
PullRequest parse_model_spec(const std::string& spec);

// Throws PullRejected for names that could leave the models directory or are not GGUF files.
void validate(const PullRequest& request);

// The quantisation a file name states, normalised to upper case ("model-q4_k_m.gguf" →
// "Q4_K_M", "x-UD-Q4_K_XL-00001-of-00002.gguf" → "UD-Q4_K_XL", "x-fp16.gguf" → "F16"); empty
// when the name states none. The last one wins ("Q8_0/model-Q8_0.gguf").
std::string quant_tag(const std::string& filename);

// The files of the split set `filename` is a part of, in order ({filename} for a single file).
std::vector<std::string> split_set(const std::string& filename);

// A model a listing offers: one file, or every part of a split set in order.
struct Candidate {
  std::vector<std::string> files;
  std::string quant;  // quant_tag of the first file
};

// The listing's models: GGUF files except projectors (mmproj), split sets grouped (a set is
// offered only when every part is listed).
std::vector<Candidate> candidates(const std::vector<std::string>& listing);

struct Choice {
  std::vector<std::string> files;  // empty: nothing fits (`reason` says why)
  std::string quant;
  std::string reason;                     // why these, for the "selected" progress line
  std::vector<std::string> alternatives;  // the other quantisations the repo offers
};

// Chooses from a listing. With `quant`, the file of that quantisation (an "UD-" variant when
// there is no plain one). Without, Q4_K_M, then the nearest 4-bit (UD-Q4_K_XL, Q4_K_S, IQ4_XS,
// Q4_0, ...), then 5-, 6-, 8-, 3-, 2-bit, then unquantised; a single file before a split set of
// the same quantisation. When several files tie, the first by name is chosen and the reason
// names the others.
Choice choose_file(const std::vector<std::string>& listing, const std::string& quant = "");

}  // namespace ember::pull
