# The README's Quick start: `make serve` and `make test`. Both do all their own set-up and are
# quick when nothing changed.
RELEASE_DIR ?= build/release
ASAN_DIR    ?= build/asan
MODEL_CACHE ?= $(HOME)/.cache/ember/models
DEFAULT_MODEL := SmolLM2-135M-Instruct.Q4_1.gguf
export EMBER_MODEL_CACHE := $(MODEL_CACHE)

.PHONY: serve test deps build build-asan models default-model test-release test-asan clean

serve: build default-model
	exec $(RELEASE_DIR)/bin/ember serve

test: build build-asan models
	scripts/check-arm.sh --gtest_brief=1
	ctest --test-dir $(RELEASE_DIR) --output-on-failure
	ctest --test-dir $(ASAN_DIR) -L parsers --output-on-failure -j2  # the fuzzers run side by side

deps:
	@scripts/install-deps.sh

build: deps
	@[ -f $(RELEASE_DIR)/CMakeCache.txt ] || cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(RELEASE_DIR)

# Debug build with AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer targets (clang),
# limited to what the `parsers` tests need.
build-asan: deps
	@[ -f $(ASAN_DIR)/CMakeCache.txt ] || CC=clang CXX=clang++ cmake -S . -B $(ASAN_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=Debug -DEMBER_SANITIZE=ON -DEMBER_FUZZ=ON
	cmake --build $(ASAN_DIR) --target test_gguf test_tokenizer test_server test_chat fuzz_gguf fuzz_tokenizer fuzz_jinja fuzz_http \
	  fuzz_api_request fuzz_json_schema fuzz_gbnf fuzz_chat_output make_gguf_corpus ember

models:
	@scripts/fetch-models.sh

default-model:
	@scripts/fetch-models.sh smollm2
	@mkdir -p models
	@[ -f models/$(DEFAULT_MODEL) ] || ln -f $(MODEL_CACHE)/$(DEFAULT_MODEL) models/ 2>/dev/null || \
	  cp $(MODEL_CACHE)/$(DEFAULT_MODEL) models/

clean:
	rm -rf build
