# Development build. The rockspec builds the same sources for installs.
LUA        ?= lua5.4
LUA_INC    ?= $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
CURL_INC   ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CC         ?= cc
WARN       = -std=c11 -Wall -Wextra -Wshadow -Wconversion -Werror
CFLAGS     ?= -O2 -g
ALL_CFLAGS = $(WARN) $(CFLAGS) -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(LUA_INC) $(CURL_INC)
LIBS       = -lcurl -lcrypto -lpthread
BUSTED     ?= busted

CORE_SRC   = csrc/sa_err.c csrc/buf.c csrc/crypto.c csrc/form.c csrc/http.c csrc/jws.c
BIND_SRC   = csrc/lsmartauth.c
HDRS       = $(wildcard csrc/*.h)
CORE_SO    = build/smartauth/core.so
C_TESTS    = $(patsubst spec/c/%.c,build/%,$(wildcard spec/c/test_*.c))

.PHONY: all test test-c test-lua lint demo clean valgrind interop

all: $(CORE_SO)

$(CORE_SO): $(CORE_SRC) $(BIND_SRC) $(HDRS)
	@mkdir -p build/smartauth
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(CORE_SRC) $(BIND_SRC) $(LIBS)

build/test_%: spec/c/test_%.c $(CORE_SRC) $(HDRS)
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -Icsrc -o $@ $< $(CORE_SRC) $(LIBS)

build/embed_game: examples/embed/game.c
	@mkdir -p build
	$(CC) $(WARN) $(CFLAGS) $(LUA_INC) -o $@ $< -llua5.4 -lm

build/embed_threads: examples/embed/threads.c
	@mkdir -p build
	$(CC) $(WARN) $(CFLAGS) $(LUA_INC) -o $@ $< -llua5.4 -lm -lpthread

# One command for everything; prints "N passed, N failed" last.
test: all $(C_TESTS) build/embed_game build/embed_threads
	@bash spec/run_tests.sh

test-c: $(C_TESTS)
	@for t in $(C_TESTS); do $$t || exit 1; done

test-lua: all
	$(BUSTED)

lint:
	luacheck lua spec examples $(wildcard bin/*)

demo: all
	$(LUA) examples/demo.lua

valgrind: $(C_TESTS)
	@for t in $(C_TESTS); do \
	  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=1 $$t || exit 1; done

clean:
	rm -rf build
