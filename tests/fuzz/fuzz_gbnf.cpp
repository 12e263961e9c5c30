// libFuzzer target for llama-server's `grammar` field: bytes up to the first NUL as GBNF, parsed
// to a grammar, then the rest fed to the recognizer. Malformed grammars must fail cleanly
// (grammar::GbnfError), never crash, hang or exhaust memory.
#include <cstring>
#include <string_view>

#include "model/grammar/gbnf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* end = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t text_size = end ? static_cast<size_t>(end - data) : size;
  try {
    const ember::grammar::Grammar g = ember::grammar::grammar_from_gbnf(
        std::string_view(reinterpret_cast<const char*>(data), text_size));
    ember::grammar::Matcher m(g);
    for (size_t i = text_size + 1; i < size; ++i)
      if (!m.advance(data[i])) break;
    (void)m.accepting();
  } catch (const ember::grammar::GbnfError&) {
  } catch (const ember::grammar::GrammarTooComplex&) {  // a 400 in the server, as it should be
  }
  return 0;
}
