# rekey — one Makefile: build, test, run, bench, fuzz, sanitizers; installs deps.
#
#   make          build ./rekey and ./rekey-guard
#   make run      install deps, build, run the example on the local provider in ./var
#   make check    install deps, build, run every test (unit + integration)
#   make asan     the whole suite under ASan+UBSan
#   make tsan     the unit suites under ThreadSanitizer
#   make bench    benchmarks (ratios against a baseline measured in the same run)

CC      ?= cc
PKGS     = libsodium libcurl jansson sqlite3 yaml-0.1 libmicrohttpd
DEBS     = build-essential pkg-config libsodium-dev libcurl4-openssl-dev libjansson-dev \
           libsqlite3-dev check libyaml-dev libmicrohttpd-dev libzxcvbn-dev sqlite3 \
           python3 python3-yaml curl
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wimplicit-fallthrough -Wvla \
           -Wno-format-truncation  # bounded snprintf truncation is deliberate; callers that care check the return
HARDEN   = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
OPT     ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) -Iinclude -Ibuild/gen \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(EXTRA_CFLAGS)
LDFLAGS_ALL = -pie -Wl,-z,relro,-z,now $(EXTRA_LDFLAGS)
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lzxcvbn -lm -lpthread
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

B        ?= build/release
LIB_SRC   = $(filter-out src/main.c src/guard_bin.c,$(wildcard src/*.c)) $(wildcard providers/*.c)
LIB_OBJ   = $(patsubst %.c,$(B)/%.o,$(LIB_SRC)) $(B)/gen/embedded.o $(B)/gen/known_secrets.o
UNIT_SRC  = $(wildcard tests/unit/*.c)
UNIT_OBJ  = $(patsubst %.c,$(B)/%.o,$(UNIT_SRC))
EMBED_IN  = $(sort $(wildcard policy/*.yaml)) policy/known-defaults.txt
# The known-secrets corpus, hashed at build time (tools/gen_known_secrets.c):
# our own lists in data/known-secrets/, and third-party lists (one value a
# line, taken as they are) in KNOWN_SECRETS_DIR when it holds any *.txt
# (by default shared/known-secrets beside the work tree; see NOTICE).
KNOWN_SECRETS_DIR ?= $(abspath ../shared/known-secrets)
CORPUS_OWN = $(sort $(wildcard data/known-secrets/*.txt))
CORPUS_EXT = $(sort $(wildcard $(KNOWN_SECRETS_DIR)/*.txt))

.PHONY: all deps run check unit integration asan tsan bench fuzz clean fakes-check fault soak
all: rekey rekey-guard

# ---- dependencies -------------------------------------------------------------
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# ---- build ----------------------------------------------------------------------
build/gen/embedded.c: $(EMBED_IN) tools/embed.sh
	@mkdir -p build/gen
	sh tools/embed.sh $(EMBED_IN) > $@.tmp && mv $@.tmp $@

$(B)/gen/embedded.o: build/gen/embedded.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

# A build tool: plain flags (no sanitizers), whatever $(B) is being built.
build/tools/gen-known-secrets: tools/gen_known_secrets.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (build tool)"
	@$(CC) -std=c11 -D_DEFAULT_SOURCE -O2 $(WARN) $(shell pkg-config --cflags libsodium 2>/dev/null) \
	  -o $@ $< $(shell pkg-config --libs libsodium 2>/dev/null)

# The list of inputs is part of the target, so adding or removing a list rebuilds it.
build/gen/known_secrets.inputs: FORCE
	@mkdir -p build/gen
	@echo "$(CORPUS_OWN) | $(CORPUS_EXT)" > $@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

build/gen/known_secrets.c: build/tools/gen-known-secrets build/gen/known_secrets.inputs \
		policy/known-defaults.txt $(CORPUS_OWN) $(CORPUS_EXT)
	@echo "  GEN     $@"
	@build/tools/gen-known-secrets -s build/gen/known_secrets.count -x policy/known-defaults.txt \
	  $(foreach f,$(CORPUS_OWN),-c $(f)) $(foreach f,$(CORPUS_EXT),-r $(f)) > $@.tmp && mv $@.tmp $@

$(B)/gen/known_secrets.o: build/gen/known_secrets.c include/rekey/check.h include/rekey/embedded.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/%.o: %.c $(wildcard include/rekey/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/librekey.a: $(LIB_OBJ)
	@echo "  AR      $@"
	@rm -f $@ && ar rcs $@ $^

$(B)/rekey: $(B)/src/main.o $(B)/librekey.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

rekey: build/release/rekey
	cp $< $@

# rekey-guard: the guard alone (src/guard_bin.c), without SQLite, curl,
# libmicrohttpd or the vault provider; libsodium, jansson and libyaml are
# linked statically (Debian's libzxcvbn.a is not PIC, so zxcvbn stays shared).
GUARD_LIBS ?= -Wl,-Bstatic $(shell pkg-config --libs libsodium jansson yaml-0.1 2>/dev/null) \
              -Wl,-Bdynamic -lzxcvbn -lm
$(B)/src/main-guard.o: src/main.c $(wildcard include/rekey/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (rekey-guard)"
	@$(CC) $(CFLAGS_ALL) -DREKEY_GUARD_BINARY -c $< -o $@

$(B)/rekey-guard: $(B)/src/main-guard.o $(B)/src/guard_bin.o $(B)/librekey.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(GUARD_LIBS)

rekey-guard: build/release/rekey-guard
	cp $< $@

# The fault-injection build: crash points compiled in, used only by tests.
FB ?= build/fault
fault: FORCE
	@$(MAKE) --no-print-directory B=$(FB) EXTRA_CFLAGS="-DRK_FAULT_INJECTION $(EXTRA_CFLAGS)" $(FB)/rekey

build/gen/suites.h: $(UNIT_SRC)
	@mkdir -p build/gen
	grep -ho 'Suite \*[a-z0-9_]*_suite(void)$$' $(UNIT_SRC) /dev/null | sed 's/Suite \*\(.*\)_suite(void)/X(\1)/' | sort -u > $@.tmp; \
	grep -h '^[a-z0-9_]*_suite(void)$$' $(UNIT_SRC) /dev/null | sed 's/\(.*\)_suite(void)/X(\1)/' | sort -u >> $@.tmp; \
	sort -u $@.tmp > $@ && rm -f $@.tmp

$(UNIT_OBJ): build/gen/suites.h

$(B)/check_unit: $(UNIT_OBJ) $(B)/librekey.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(LIBS)

$(B)/rk-fp: $(B)/tests/tools/rk_fp.o $(B)/librekey.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

FORCE:

# ---- run and test ---------------------------------------------------------------
run: deps
	@$(MAKE) --no-print-directory rekey
	sh contrib/examples/run-demo.sh ./rekey

unit: $(B)/check_unit
	CK_FORK=yes REKEY_SRCDIR=$(CURDIR) KNOWN_SECRETS_DIR=$(KNOWN_SECRETS_DIR) $(B)/check_unit

integration: $(B)/rekey $(B)/rekey-guard fault $(B)/rk-fp
	REKEY_BIN=$(CURDIR)/$(B)/rekey REKEY_GUARD_BIN=$(CURDIR)/$(B)/rekey-guard REKEY_FAULT_BIN=$(CURDIR)/$(FB)/rekey \
	  RK_FP=$(CURDIR)/$(B)/rk-fp REKEY_SRCDIR=$(CURDIR) sh tests/integration/run.sh

check: deps
	@$(MAKE) --no-print-directory rekey rekey-guard
	@$(MAKE) --no-print-directory unit integration fakes-check

ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
asan: deps
	@$(MAKE) --no-print-directory B=build/asan FB=build/asan-fault OPT="-O1 -g" HARDEN="-fPIE" \
	  EXTRA_CFLAGS="$(ASAN_FLAGS)" EXTRA_LDFLAGS="$(ASAN_FLAGS)" \
	  GUARD_LIBS="$(shell pkg-config --libs libsodium jansson yaml-0.1 2>/dev/null) -lzxcvbn -lm" unit integration

# ThreadSanitizer over the unit suites (the threaded parts: the HTTP client's
# slots, breaker and rate limit under concurrent callers). Not part of check.
TSAN_FLAGS = -fsanitize=thread -fno-omit-frame-pointer
tsan: deps
	@$(MAKE) --no-print-directory B=build/tsan OPT="-O1 -g" HARDEN="-fPIE" \
	  EXTRA_CFLAGS="$(TSAN_FLAGS)" EXTRA_LDFLAGS="$(TSAN_FLAGS)" build/tsan/check_unit
	CK_FORK=yes TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" REKEY_SRCDIR=$(CURDIR) \
	  KNOWN_SECRETS_DIR=$(KNOWN_SECRETS_DIR) build/tsan/check_unit

$(B)/bench-exec: $(B)/tests/bench/bench_exec.o
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^

# The daemon for SOAK_SECONDS against the doubles with faults (not part of check).
SOAK_SECONDS ?= 300
soak: deps
	@$(MAKE) --no-print-directory rekey $(B)/rk-fp
	REKEY_BIN=$(CURDIR)/rekey RK_FP=$(CURDIR)/$(B)/rk-fp sh tests/soak/soak.sh $(SOAK_SECONDS)

bench: deps
	@$(MAKE) --no-print-directory rekey rekey-guard $(B)/bench-exec $(B)/rk-fp
	sh tests/bench/run.sh ./rekey $(CURDIR)/$(B)/bench-exec ./rekey-guard build/gen/known_secrets.count

# The test doubles against real clients: curl; node-vault and the AWS SDK for
# JavaScript v3 from npm; the AWS CLI (Debian's awscli, installed when missing
# and running as root); /usr/bin/kubectl.
fakes-check:
	@bash tests/fakes/check_vault_fake.sh > build/fakes-check.log 2>&1; rc=$$?; \
	grep -E '^(FAIL|# )' build/fakes-check.log; tail -1 build/fakes-check.log; \
	if [ $$rc = 77 ]; then echo "fakes-check: the node client part was skipped (npm registry unreachable)"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi
	@bash tests/fakes/check_aws_fake.sh > build/fakes-check-aws.log 2>&1; rc=$$?; \
	grep -E '^(FAIL|SKIP|# )' build/fakes-check-aws.log; grep -E '^aws_fake: ' build/fakes-check-aws.log; \
	if [ $$rc = 77 ]; then echo "fakes-check: the AWS SDK for JavaScript part was skipped (npm registry unreachable)"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi
	@bash tests/fakes/check_k8s_fake.sh > build/fakes-check-k8s.log 2>&1; rc=$$?; \
	grep -E '^(FAIL|SKIP|# )' build/fakes-check-k8s.log; grep -E '^k8s_fake: ' build/fakes-check-k8s.log; \
	if [ $$rc = 77 ]; then echo "fakes-check: the kubectl part was skipped (/usr/bin/kubectl not found)"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi

clean:
	rm -rf build rekey rekey-guard
