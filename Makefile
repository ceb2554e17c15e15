# Development build. The rockspec builds the same sources for installs.
# LUA=lua5.1|lua5.2|lua5.3|lua5.4|luajit picks the runtime: 5.4 builds into
# build/smartauth, any other into build/$(LUA)/smartauth. The bindings reach
# the 5.3 C API through compat-5.3 (lua-compat53-dev), whose header Debian
# keeps under /usr/include/lua5.1 and lua5.2: after the runtime's own.
LUA        ?= lua5.4
LUA_INC    ?= $(shell pkg-config --cflags $(LUA) 2>/dev/null || echo -I/usr/include/$(LUA)) \
              -I/usr/include/lua5.1
ifeq ($(LUA),lua5.4)
BUILD      = build
else
BUILD      = build/$(LUA)
endif
CURL_INC   ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CC         ?= cc
WARN       = -std=c11 -Wall -Wextra -Wshadow -Wconversion -Werror
CFLAGS     ?= -O2 -g
ALL_CFLAGS = $(WARN) $(CFLAGS) -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(LUA_INC) $(CURL_INC)
BUSTED     ?= busted
# Three C modules, split by what they link, so that a program maps a
# library only when it needs it (a cached token from a file store never
# maps libcurl). *_SRC: the Lua-free core each needs; *_BIND: its binding
# files (csrc/l*.c, the only files that include lua.h). A shared helper is
# compiled into each module that uses it; hidden visibility keeps it private.
CORE_LIBS  = -lcrypto -lpthread
HTTP_LIBS  = -lcurl -lssl -lcrypto -lpthread
REDIS_LIBS = -lhiredis -lcrypto
CORE_SRC   = csrc/sa_err.c csrc/buf.c csrc/clock.c csrc/crypto.c csrc/form.c csrc/ossl.c \
             csrc/key.c csrc/key_gen.c csrc/key_jwk.c csrc/key_x25519.c csrc/jws.c csrc/jwe.c csrc/jwe_crypto.c csrc/aead.c csrc/store_file.c
CORE_BIND  = csrc/lsmartauth.c csrc/lutil.c csrc/lcrypto.c csrc/lkey.c csrc/lstore.c \
             csrc/lclock.c csrc/lconfig.c csrc/lsandbox_str.c csrc/laead.c
HTTP_SRC   = csrc/sa_err.c csrc/buf.c csrc/clock.c csrc/http.c csrc/http_setup.c csrc/http_resp.c csrc/http_ca.c
HTTP_BIND  = csrc/lutil.c csrc/lhttp.c
REDIS_SRC  = csrc/sa_err.c csrc/buf.c csrc/clock.c csrc/crypto.c csrc/aead.c csrc/store_redis.c
REDIS_BIND = csrc/lutil.c csrc/lredis.c
# Every Lua-free source once (the C tests and fuzzers link these), every
# binding file once (test_oom links the three modules into one program).
LIB_SRC    = $(sort $(CORE_SRC) $(HTTP_SRC) $(REDIS_SRC))
BIND_SRC   = $(sort $(CORE_BIND) $(HTTP_BIND) $(REDIS_BIND))
LIBS       = -lcurl -lssl -lcrypto -lpthread -lhiredis
HDRS       = $(wildcard csrc/*.h)
MODULES    = $(BUILD)/smartauth/core.so $(BUILD)/smartauth/core_http.so $(BUILD)/smartauth/core_redis.so
C_TESTS    = $(patsubst spec/c/%.c,build/%,$(wildcard spec/c/test_*.c))

.PHONY: all runtimes test test-c test-lua lint demo clean valgrind interop sanitize fuzz fuzz-replay analyze docs docs-check

all: $(MODULES)

$(BUILD)/smartauth/core.so: $(CORE_SRC) $(CORE_BIND) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(CORE_SRC) $(CORE_BIND) $(CORE_LIBS)

$(BUILD)/smartauth/core_http.so: $(HTTP_SRC) $(HTTP_BIND) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(HTTP_SRC) $(HTTP_BIND) $(HTTP_LIBS)

$(BUILD)/smartauth/core_redis.so: $(REDIS_SRC) $(REDIS_BIND) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(REDIS_SRC) $(REDIS_BIND) $(REDIS_LIBS)

build/test_%: spec/c/test_%.c $(LIB_SRC) $(HDRS)
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -Icsrc -o $@ $< $(LIB_SRC) $(LIBS)

# The binding under a failing Lua allocator (spec/c/test_oom.c): this C test
# links the three modules' bindings and Lua as well.
build/test_oom: spec/c/test_oom.c $(LIB_SRC) $(BIND_SRC) $(HDRS)
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -Icsrc -o $@ $< $(LIB_SRC) $(BIND_SRC) $(LIBS) -llua5.4 -lm

build/embed_game: examples/embed/game.c
	@mkdir -p build
	$(CC) $(WARN) $(CFLAGS) $(LUA_INC) -o $@ $< -llua5.4 -lm

build/embed_threads: examples/embed/threads.c
	@mkdir -p build
	$(CC) $(WARN) $(CFLAGS) $(LUA_INC) -o $@ $< -llua5.4 -lm -lpthread

# The C modules for the other runtimes the tests run on (build/$(LUA)/).
OTHER_LUAS = luajit lua5.1 lua5.2 lua5.3
runtimes:
	@for l in $(OTHER_LUAS); do $(MAKE) --no-print-directory LUA=$$l all || exit 1; done

# One command for everything; prints "N passed, N failed" last.
test: all runtimes $(C_TESTS) build/embed_game build/embed_threads
	@bash spec/run_tests.sh

test-c: $(C_TESTS)
	@for t in $(C_TESTS); do $$t || exit 1; done

test-lua: all
	$(BUSTED)

# luacheck reads 5.4; luac5.1 -p proves the library, the CLI and the specs
# parse on every runtime (5.1 has the least syntax: no //, bit operators,
# goto or <close>). Only lua54_spec (to-be-closed variables), the fuzz seed
# maker, the benchmarks and the 5.4 examples use 5.4 syntax.
lint:
	luacheck lua spec examples bench $(wildcard bin/*)
	@luac5.1 -p $(wildcard bin/*) $(shell find lua spec -name '*.lua' ! -name lua54_spec.lua ! -path 'spec/fuzz/*') \
	  && echo "luac5.1 -p: bin, lua and spec parse on Lua 5.1"

demo: all
	$(LUA) examples/demo.lua

# ------------------------------------------------------------ the reference
# LDoc (Debian lua-ldoc) over lua/smartauth (config.ld) writes docs/; the
# smartauth command's page is made from its own help texts. Markdown by
# Discount (Debian lua-discount); the date is left out so that the same
# sources make the same files.
LDOC       ?= ldoc
LDOC_FLAGS = --date ""

build/ldoc/smartauth-command.md: bin/smartauth lua/smartauth/provider.lua all
	@mkdir -p $(@D)
	@set -e; { printf '# The smartauth command\n\nWhat `smartauth --help`, `smartauth help COMMAND` and `smartauth help config` print.\n'; \
	  for c in "" login token userinfo list logout config; do \
	    printf '\n## smartauth help %s\n\n' "$$c"; \
	    $(LUA) bin/smartauth help $$c >$@.part; sed 's/^/    /' $@.part; done; } >$@.tmp; \
	  rm -f $@.part; mv $@.tmp $@

docs: build/ldoc/smartauth-command.md
	@rm -rf docs
	$(LDOC) $(LDOC_FLAGS) .

# Fails on any LDoc warning, and when the committed docs/ differs from what
# the sources make (run `make docs` and commit docs/).
docs-check: build/ldoc/smartauth-command.md
	@rm -rf build/ldoc/out
	@$(LDOC) $(LDOC_FLAGS) --dir build/ldoc/out . >build/ldoc/ldoc.log 2>&1 || { cat build/ldoc/ldoc.log; exit 1; }
	@if grep -v -E '^(reading configuration from config\.ld|output written to .*)$$' build/ldoc/ldoc.log; then \
	  echo "docs-check: LDoc warnings (above)"; exit 1; fi
	@diff -r -q docs build/ldoc/out || { echo "docs-check: docs/ is out of date: run 'make docs' and commit docs/"; exit 1; }
	@echo "docs-check: no warnings, docs/ up to date"

# ---------------------------------------------------------------- proving
# Each target below builds what it needs and runs from a clean checkout after
# `bash .ci/setup`; their builds live under build/ apart from build/smartauth.
CLANG      ?= clang
SAN_FLAGS  = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined
SAN_CFLAGS = $(WARN) $(SAN_FLAGS) -D_POSIX_C_SOURCE=200809L -fPIC $(LUA_INC) $(CURL_INC)
SAN_TESTS  = $(patsubst spec/c/%.c,build/asan/%,$(wildcard spec/c/test_*.c))
SPEC_BINS  = build/embed_game build/embed_threads
# LeakSanitizer on: the whole state is closed at exit (busted ends with
# os.exit(code, true)), so anything unreachable then is a real leak.
SAN_ENV    = ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1 \
             LSAN_OPTIONS=suppressions=$(CURDIR)/spec/sanitize/lsan.supp:print_suppressions=0 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

SAN_MODULES = $(patsubst build/%,build/asan/%,$(MODULES))

build/asan/smartauth/core.so: $(CORE_SRC) $(CORE_BIND) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -fvisibility=hidden -shared -o $@ $(CORE_SRC) $(CORE_BIND) $(CORE_LIBS)

build/asan/smartauth/core_http.so: $(HTTP_SRC) $(HTTP_BIND) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -fvisibility=hidden -shared -o $@ $(HTTP_SRC) $(HTTP_BIND) $(HTTP_LIBS)

build/asan/smartauth/core_redis.so: $(REDIS_SRC) $(REDIS_BIND) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -fvisibility=hidden -shared -o $@ $(REDIS_SRC) $(REDIS_BIND) $(REDIS_LIBS)

# CHECK(!"message") is the tests' way to fail with a message.
build/asan/test_%: spec/c/test_%.c $(LIB_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -Wno-string-conversion -Icsrc -o $@ $< $(LIB_SRC) $(LIBS)

build/asan/test_oom: spec/c/test_oom.c $(LIB_SRC) $(BIND_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -Icsrc -o $@ $< $(LIB_SRC) $(BIND_SRC) $(LIBS) -llua5.4 -lm

build/asan-rt/noinherit.so: spec/sanitize/noinherit.c
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 -D_POSIX_C_SOURCE=200809L -fPIC -shared -o $@ $<

# The C tests, then the whole busted suite with the core built with ASan and
# UBSan (lua5.4 runs with the sanitizer runtime preloaded; see
# spec/sanitize/lua.sh).
sanitize: all $(SPEC_BINS) $(SAN_MODULES) build/asan-rt/noinherit.so $(SAN_TESTS)
	@for t in $(SAN_TESTS); do $(SAN_ENV) $$t || exit 1; done
	$(SAN_ENV) SA_SAN_PRELOAD="$$($(CLANG) -print-file-name=libclang_rt.asan-x86_64.so) \
	  $(CURDIR)/build/asan-rt/noinherit.so" \
	  $(BUSTED) --lua=spec/sanitize/lua.sh --cpath='./build/asan/?.so' $(SPECS)

# The C tests alone under valgrind (quick; the target below adds busted).
valgrind-c: $(C_TESTS)
	@for t in $(C_TESTS); do \
	  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=1 $$t || exit 1; done

# The C tests, then the whole busted suite, under valgrind memcheck: no
# invalid reads or writes, no use of uninitialised memory, no definite leaks
# (spec/valgrind/lua.sh; suppressions in spec/valgrind/smartauth.supp, for
# libraries outside the project only). About 7 minutes on 2 cores; SPECS=...
# picks spec files.
valgrind: valgrind-c all $(SPEC_BINS)
	$(BUSTED) --lua=spec/valgrind/lua.sh $(SPECS)

# libFuzzer: every harness in spec/fuzz for FUZZ_TIME seconds (make fuzz-form
# runs one). Seeds in spec/fuzz/corpus/NAME; what the fuzzer adds goes to
# build/fuzz/corpus/NAME, crashes to build/fuzz/crashes/.
FUZZ_TIME  ?= 60
FUZZ_FLAGS ?=
FUZZ_NAMES = $(patsubst spec/fuzz/fuzz_%.c,%,$(wildcard spec/fuzz/fuzz_*.c))
FUZZ_OBJ   = $(patsubst csrc/%.c,build/fuzz/obj/%.o,$(LIB_SRC))

build/fuzz/obj/%.o: csrc/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: spec/fuzz/fuzz_%.c spec/fuzz/fuzz_input.h $(FUZZ_OBJ)
	$(CLANG) $(SAN_CFLAGS) -fsanitize=fuzzer -Icsrc -o $@ $< $(FUZZ_OBJ) $(LIBS)

fuzz-%: build/fuzz/fuzz_%
	@mkdir -p build/fuzz/corpus/$* build/fuzz/crashes
	@echo "fuzz $*: $(FUZZ_TIME) s"
	@$< -max_total_time=$(FUZZ_TIME) -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
	  -artifact_prefix=build/fuzz/crashes/$*- $(FUZZ_FLAGS) \
	  build/fuzz/corpus/$* spec/fuzz/corpus/$* >build/fuzz/$*.log 2>&1 \
	  || { tail -n 80 build/fuzz/$*.log; echo "fuzz $*: FAILED (input in build/fuzz/crashes/)"; exit 1; }
	@grep -E '^(#[0-9]+.*DONE|stat::slowest_unit_time_sec)' build/fuzz/$*.log | sed 's/^/fuzz $*: /'

fuzz: $(addprefix fuzz-,$(FUZZ_NAMES))

# Replays the committed corpora (seeds and past crashes) once, no fuzzing.
fuzz-replay: $(addprefix build/fuzz/fuzz_,$(FUZZ_NAMES))
	@for n in $(FUZZ_NAMES); do \
	  build/fuzz/fuzz_$$n -runs=0 spec/fuzz/corpus/$$n >build/fuzz/$$n-replay.log 2>&1 \
	    || { tail -n 80 build/fuzz/$$n-replay.log; exit 1; }; \
	  echo "fuzz-replay $$n: $$(ls spec/fuzz/corpus/$$n | wc -l) inputs ok"; done

# Static analysis of the C core: cppcheck (variableScope is off: locals are
# declared at the top of a block, the LPeg/Lua way, and moving them is churn,
# not a fix) and clang-tidy (checks and exclusions in .clang-tidy).
analyze:
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --std=c11 --inline-suppr --suppress=variableScope \
	  -D_POSIX_C_SOURCE=200809L -Icsrc csrc
	@# One file per run: clang-tidy 14's valist checker keeps state from the
	@# previous file and then reports every va_start as uninitialised.
	@rc=0; for f in $(wildcard csrc/*.c); do \
	  clang-tidy --quiet $$f -- -std=c11 -D_POSIX_C_SOURCE=200809L \
	    $(LUA_INC) $(CURL_INC) -Icsrc 2>/dev/null || rc=1; done; \
	  [ $$rc -eq 0 ] && echo "clang-tidy: csrc clean"; exit $$rc

# Benchmarks against real baselines on 127.0.0.1 (about 2.5 minutes on 2 cores):
# prints median, baseline, ratio, target, PASS/MISS; JSON in bench/results/.
# bench/setup.sh installs what is missing (nginx-light, lua-sec, npm ci).
.PHONY: bench
build/bench/c_floor: bench/c_floor.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) -D_POSIX_C_SOURCE=200809L $(CURL_INC) -o $@ $< -lcurl

build/bench/scale_floor: bench/scale_floor.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) -D_POSIX_C_SOURCE=200809L $(CURL_INC) -o $@ $< -lcurl

bench: all build/bench/c_floor build/bench/scale_floor
	@bash bench/setup.sh
	timeout 900 $(LUA) bench/run.lua

clean:
	rm -rf build
