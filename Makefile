# ebb — one non-recursive GNU Makefile.
#
# Layout: every library folder (client/, virtio/, host-reclaim/, vmm/,
# guest-agent/, host-reclaim/ebbd/)
# builds one static library from its top-level *.c files; the programs live in
# <folder>/bin/*.c and only compose the libraries.  base/ (log contract, page
# size, socket connect) is header only: every library includes it, none links it.  Everything built goes to
# $(BUILD) (default build/).  Tests are found by name:
#   tests/unit/test_*.c          cmocka unit tests        (make check-unit)
#   tests/integration/itest_*.c  integration programs     (make check-integration)
#   tests/integration/*.sh       integration scripts      (make check-integration)
#   tests/fuzz/fuzz_*.c          libFuzzer targets        (make fuzz / check-fuzz)
#   tests/box/scenarios/*.sh     KVM scenarios in the box (make check-e2e)
# Every test speaks TAP; scripts/run-suite counts it and `make check` ends with
# one line "N passed, N failed[, N skipped]".
#
# Knobs: V=1 (echo commands), WERROR=0|1 (default 1 under CI, else 0),
# SANITIZE=address,undefined | thread (| memory: `make fuzz` only), STATIC=1 (static programs, for images),
# PREFIX=/usr/local, DESTDIR=., BOX_KERNEL=ebb|debian (the host-box's kernel,
# docs/box.md).

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
SANITIZE ?=
BOX_KERNEL ?= debian
STATIC   ?= 0
V        ?= 0
ifneq ($(CI),)
WERROR   ?= 1
else
WERROR   ?= 0
endif

.DEFAULT_GOAL := all
# Keep the objects of test programs (make would delete them as intermediates).
.SECONDARY:

ifeq ($(V),1)
Q :=
else
Q := @
endif

CC      ?= cc
CLANG   ?= clang
AR      ?= ar

PKGS      := liblz4 libzstd json-c libsodium
# Evaluated on first use (not at parse time), so `make deps check` works on a
# fresh machine where pkg-config learns of the libraries only after deps ran.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(shell pkg-config --libs $(if $(filter 1,$(STATIC)),--static) $(PKGS) 2>/dev/null))$(PKG_LIBS)

WARNINGS := -Wall -Wextra -Wshadow -Wvla -Wimplicit-fallthrough -Wformat=2 \
            -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -I. -MMD -MP $(PKG_CFLAGS)
LDLIBS    = $(PKG_LIBS) -lpthread -lm
ifeq ($(WERROR),1)
CFLAGS   += -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
# gcc warns that TSan does not model atomic_thread_fence; the rings' fences stay.
CFLAGS   += $(if $(findstring thread,$(SANITIZE)),-Wno-tsan)
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
ifeq ($(STATIC),1)
LDFLAGS  += -static
endif

# --- libraries -------------------------------------------------------------

LIB_NAMES := client virtio reclaim vmm agent ebbd libvirt
client_DIR  := client
ebbd_DIR    := host-reclaim/ebbd
# ebbd's libvirt backend: only ebbd (and its libvirt test) link libvirt
libvirt_DIR := host-reclaim/libvirt
LIBVIRT_LIBS = $(shell pkg-config --libs libvirt)
$(BUILD)/obj/host-reclaim/libvirt/%.o: CFLAGS += $(shell pkg-config --cflags libvirt)
virtio_DIR  := virtio
reclaim_DIR := host-reclaim
vmm_DIR     := vmm
agent_DIR   := guest-agent

define library
$(1)_SRC := $$(wildcard $$($(1)_DIR)/*.c)
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRC))
$(1)_LIB := $(BUILD)/lib/libebb_$(1).a
$$($(1)_LIB): $$($(1)_OBJ) | $(BUILD)/obj/empty.o
	@mkdir -p $$(@D)
	@rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$(if $$($(1)_OBJ),$$($(1)_OBJ),$(BUILD)/obj/empty.o)
endef
$(foreach l,$(LIB_NAMES),$(eval $(call library,$(l))))

ALL_LIBS := $(foreach l,$(LIB_NAMES),$($(l)_LIB))
# Link every library in one group: order between them then does not matter.
LINK_LIBS = -Wl,--start-group $(ALL_LIBS) -Wl,--end-group

$(BUILD)/obj/empty.o:
	@mkdir -p $(@D)
	$(Q)echo 'typedef int ebb_empty_unit;' | $(CC) -x c -c -o $@ -

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# --- programs ----------------------------------------------------------------

PROGRAM_SRC := $(wildcard vmm/bin/ebb.c host-reclaim/bin/ebbd.c guest-agent/bin/ebb-agent.c \
                           guest-agent/bin/ebb-work.c)
PROGRAMS := $(addprefix $(BUILD)/bin/,$(basename $(notdir $(PROGRAM_SRC))))

# Each program links exactly the libraries it uses (the layering of
# docs/ARCHITECTURE.md), in one group among themselves, and only the system
# libraries those need: the static guest agent links no host library.
pkglibs = $(shell pkg-config --libs $(if $(filter 1,$(STATIC)),--static) $(1) 2>/dev/null)
$(BUILD)/bin/ebb: $(BUILD)/obj/vmm/bin/ebb.o $(BUILD)/obj/vmm/bin/ebb_top.o \
                  $(BUILD)/obj/vmm/bin/run_opts.o $(BUILD)/obj/vmm/bin/bench_density.o \
                  $(BUILD)/obj/vmm/bin/density.o \
                  $(vmm_LIB) $(virtio_LIB) $(reclaim_LIB) $(client_LIB) | $(BUILD)/obj/empty.o
# `ebb top` draws with ncurses: linked into ebb only.
$(BUILD)/bin/ebb: LDLIBS = $(call pkglibs,liblz4 libzstd json-c libsodium ncursesw) -lpthread -lm
# ebbd alone serves HTTP (its /metrics), reads ebbd.conf and talks to
# libvirt: libmicrohttpd, inih and libvirt are linked into it only.
$(BUILD)/bin/ebbd: $(BUILD)/obj/host-reclaim/bin/ebbd.o $(BUILD)/obj/host-reclaim/bin/ebbd_http.o \
                   $(libvirt_LIB) $(ebbd_LIB) $(reclaim_LIB) $(client_LIB) | $(BUILD)/obj/empty.o
$(BUILD)/bin/ebbd: LDLIBS = $(call pkglibs,json-c libmicrohttpd inih libvirt) \
                            -lpthread -lm
$(BUILD)/tests/unit/test_libvirt_stats: LDLIBS += $(LIBVIRT_LIBS)
# the configuration file parser (inih) only in ebbd and its test
$(BUILD)/tests/unit/test_ebbd_config: LDLIBS += $(shell pkg-config --libs inih 2>/dev/null || echo -linih) \
	$(LIBVIRT_LIBS)
# The agent runs inside small guests with no libc of their own: always static.
$(BUILD)/bin/ebb-agent: LDFLAGS += $(if $(SANITIZE),,-static)
$(BUILD)/bin/ebb-agent: $(BUILD)/obj/guest-agent/bin/ebb-agent.o $(agent_LIB) | $(BUILD)/obj/empty.o
$(BUILD)/bin/ebb-agent: LDLIBS = -lpthread -lm
# The density workloads (docs/density.md) run in the same guests: static, libc only.
$(BUILD)/bin/ebb-work: LDFLAGS += $(if $(SANITIZE),,-static)
$(BUILD)/bin/ebb-work: $(BUILD)/obj/guest-agent/bin/ebb-work.o
$(BUILD)/bin/ebb-work: LDLIBS =

$(PROGRAMS):
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) -Wl,--start-group $(filter %.a,$^) -Wl,--end-group \
	    $(LDLIBS)

# Small helper programs used by tests and images (statically linked so they run
# in guests and in the host-box): tests/progs/*.c -> $(BUILD)/progs/*
TEST_PROG_SRC := $(wildcard tests/progs/*.c)
TEST_PROGS    := $(patsubst tests/progs/%.c,$(BUILD)/progs/%,$(TEST_PROG_SRC))
$(BUILD)/progs/%: tests/progs/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(if $(SANITIZE),,-static) -o $@ $< $(LDLIBS)

# --- tests -------------------------------------------------------------------

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
ITEST_SRC := $(wildcard tests/integration/itest_*.c)
ITEST_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(ITEST_SRC))
ITEST_SCRIPTS := $(wildcard tests/integration/*.sh)
# Helper programs the integration tests start (not tests themselves).
ITEST_HELPER_SRC := $(wildcard tests/integration/stub_*.c)
ITEST_HELPERS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(ITEST_HELPER_SRC))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINK_LIBS) -lcmocka $(LDLIBS)
# the option parsing of `ebb run` lives in the program, not a library
$(BUILD)/tests/unit/test_ebb_run_opts: $(BUILD)/obj/vmm/bin/run_opts.o
# the pure half of `ebb bench density` (mix, reports, SLO, CSV) lives in the program too
$(BUILD)/tests/unit/test_bench_density: $(BUILD)/obj/vmm/bin/density.o

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LINK_LIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LINK_LIBS) $(LDLIBS)

# libFuzzer targets: clang, the library sources compiled in with coverage.
FUZZ_CFLAGS = -std=gnu11 -g -O1 -D_GNU_SOURCE -I. $(PKG_CFLAGS) \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC := $(client_SRC) $(virtio_SRC) $(reclaim_SRC) $(vmm_SRC) $(agent_SRC)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(LDLIBS)

# MemorySanitizer builds (reads of uninitialised memory).  MSan needs every
# linked object instrumented, so only the targets built from virtio/ alone
# (no json-c / lz4 / zstd, only libc) have one: FUZZ_MSAN_NAMES.
# `make fuzz SANITIZE=memory` builds just these; check-fuzz runs both kinds.
FUZZ_MSAN_NAMES := fuzz_vring fuzz_balloon fuzz_console fuzz_virtio_pci
FUZZ_MSAN_BINS  := $(patsubst %,$(BUILD)/fuzz-msan/%,$(FUZZ_MSAN_NAMES))
FUZZ_MSAN_CFLAGS = -std=gnu11 -g -O1 -D_GNU_SOURCE -I. \
                   -fsanitize=fuzzer,memory -fsanitize-memory-track-origins
$(BUILD)/fuzz-msan/%: tests/fuzz/%.c $(virtio_SRC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZ    $@ (msan)")
	$(Q)$(CLANG) $(FUZZ_MSAN_CFLAGS) -o $@ $< $(virtio_SRC)

# --- top-level targets ------------------------------------------------------

.PHONY: all deps check check-build check-unit check-integration check-fuzz check-e2e \
        tests lint images demo install clean fuzz bench

all: $(PROGRAMS) $(TEST_PROGS)

tests: all $(UNIT_BINS) $(ITEST_BINS) $(ITEST_HELPERS) $(BENCH_BINS)

deps:
	$(Q)scripts/deps.sh

RESULTS := $(BUILD)/results
FUZZ_SECONDS ?= 13
FUZZ_MSAN_SECONDS ?= 5
FUZZ_JOBS ?= 2

# The suites run one after the other (-j1), so what they need is built first
# with the caller's -j (the fuzzers take minutes to build on one core); a build
# that fails here fails again in its suite, which then counts as not run.
check: tests
	@rm -rf $(RESULTS)
	@$(MAKE) --no-print-directory -k check-build || true
	@$(MAKE) --no-print-directory -k -j1 check-unit check-integration check-fuzz check-e2e; \
	scripts/summary $(RESULTS)

check-build: tests $(FUZZ_BINS) $(FUZZ_MSAN_BINS) images

check-unit: tests
	$(Q)scripts/run-suite unit $(RESULTS) 120 $(UNIT_BINS)

# Integration tests boot the guest image under QEMU TCG: build images first.
check-integration: tests images
	$(Q)BUILD=$(BUILD) scripts/run-suite integration $(RESULTS) 900 $(ITEST_BINS) $(ITEST_SCRIPTS)

fuzz: $(if $(filter memory,$(SANITIZE)),$(FUZZ_MSAN_BINS),$(FUZZ_BINS))

check-fuzz: $(FUZZ_BINS) $(FUZZ_MSAN_BINS)
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_MSAN_SECONDS=$(FUZZ_MSAN_SECONDS) SUITE_JOBS=$(FUZZ_JOBS) \
	    scripts/run-suite fuzz $(RESULTS) 600 \
	    $(patsubst %,scripts/run-fuzz:%,$(FUZZ_BINS) $(FUZZ_MSAN_BINS))

check-e2e: images
	$(Q)BUILD=$(BUILD) scripts/run-suite e2e $(RESULTS) 3900 tests/box/run-all

bench: tests images
	$(Q)BUILD=$(BUILD) scripts/bench.sh

images: all
	$(Q)BUILD=$(BUILD) BOX_KERNEL=$(BOX_KERNEL) scripts/images.sh

demo: images
	$(Q)BUILD=$(BUILD) scripts/demo.sh

LINT_SRC := $(client_SRC) $(virtio_SRC) $(reclaim_SRC) $(vmm_SRC) $(agent_SRC) $(ebbd_SRC) \
	    $(libvirt_SRC) $(PROGRAM_SRC) host-reclaim/bin/ebbd_http.c vmm/bin/ebb_top.c \
	    vmm/bin/run_opts.c vmm/bin/bench_density.c vmm/bin/density.c
lint:
	@echo "  LAYERS"
	$(Q)scripts/check-layers
	@echo "  CPPCHECK"
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	    --std=c11 --inline-suppr -D_GNU_SOURCE -I. \
	    --suppress=missingIncludeSystem $(LINT_SRC)
	@echo "  CLANG-TIDY"
	$(Q)printf '%s\n' $(LINT_SRC) | xargs -r -P2 -n4 sh -c \
	    'clang-tidy --quiet "$$@" -- $(filter-out -MMD -MP -Werror,$(CFLAGS)) 2>/dev/null' tidy | \
	    { ! grep -E -A3 '(warning|error):'; }

# Units go where systemd looks for them under PREFIX (/usr/local/lib/systemd/
# system for the default); the example configuration becomes
# /etc/ebb/ebbd.conf only if there is none (an operator's file is kept).
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man
COMPLDIR   ?= $(PREFIX)/share/bash-completion/completions
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(COMPLDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/ebb/vms $(DESTDIR)$(PREFIX)/share/doc/ebb
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	for u in ebbd.service ebb@.service; do \
	    sed 's|@BINDIR@|$(PREFIX)/bin|g' dist/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	install -m 0644 dist/man/ebb.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 dist/man/ebbd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 dist/man/ebbd.8 dist/man/ebb-agent.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 dist/bash-completion/ebb $(DESTDIR)$(COMPLDIR)/ebb
	ln -sf ebb $(DESTDIR)$(COMPLDIR)/ebbd
	install -m 0644 dist/ebbd.conf $(DESTDIR)$(PREFIX)/share/doc/ebb/ebbd.conf.example
	[ -e $(DESTDIR)$(SYSCONFDIR)/ebb/ebbd.conf ] || \
	    install -m 0644 dist/ebbd.conf $(DESTDIR)$(SYSCONFDIR)/ebb/ebbd.conf

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
