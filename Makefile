# ptrack: top-level build for every userspace part.
#
#   make              build daemon, tools, tests and benchmarks (build/normal)
#   make SAN=1        the same with ASan+UBSan (build/san), side by side
#   make ARCH=arm64   cross-build ptrackd, ptrackctl, ptrack-vmm and libptrack
#                     for arm64 (build/arm64; mk/deps-arm64.sh installs the
#                     arm64 -dev packages)
#   make check        the full test run (README's test command)
#   make demo         the main job (README's demo command)
#   make deps         install the Debian 12 packages the project needs
#   make lint         clang-format, cppcheck and clang-tidy
#   make fuzz         run each libFuzzer target for FUZZ_SECONDS (long run)
#   make bench        run the userspace benchmarks
#   make install      install the shipped parts (DESTDIR, PREFIX, ...: mk/install.mk)
#   make deb          the Debian packages (dpkg-buildpackage -us -uc -b)
#
# Kernel and emulation parts (each script installs what it needs):
#   make kernel       the KVM arm64 series: build, bisect, other arches, checks
#   make arm64-test   boot the patched kernel in the emulated arm64 host
#   make arm64-switchover  live-migrate the AArch64 guest between two
#                     emulated arm64 hosts (needs make kernel, ARCH=arm64)
#   make qemu         Debian's QEMU 7.2 with the PTA device
#   make pta          the PTA module (W=1, sparse, checkpatch)
#   make pta-test     PTA register conformance and migration state, the arm64
#                     PTA scenarios, the emulated host migrated mid-run
#   make dkms-check   build the PTA module through dkms.conf
#   make bench-kernel / bench-pta   write-protect vs HAFDBS vs PTA
#   make bench-arm64-migrate        the same, migrated by ptrackd (headline)

SHELL := /bin/bash
BUILD ?= build
SAN ?= 0

# ARCH=arm64 cross-builds the shipped programs with Debian's arm64 multiarch
# -dev packages; anything else builds for this machine.
ARCH ?=
ifeq ($(ARCH),arm64)
O := $(BUILD)/arm64
SANFLAGS :=
OPT := -O2
else ifeq ($(SAN),1)
O := $(BUILD)/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=undefined
OPT := -O1
else
O := $(BUILD)/normal
SANFLAGS :=
OPT := -O2
endif

PKGS := libprotobuf-c libisal cunit libsystemd libnl-genl-3.0 libvirt inih gnutls \
	libmicrohttpd
PKG_CONFIG := pkg-config
CC := gcc
ifeq ($(ARCH),arm64)
# libisal2:arm64 cannot be installed beside the amd64 one (not Multi-Arch:
# same): mk/deps-arm64.sh unpacks Debian's arm64 package into a private
# sysroot, the programs link it from there (its shared library goes into
# the emulated host's image). CUnit is for the tests, which run here.
ARM64_SYSROOT ?= $(BUILD)/arm64-sysroot
PKGS := $(filter-out libisal cunit,$(PKGS))
PKG_CONFIG := env PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
	pkg-config
CC := aarch64-linux-gnu-gcc
ISAL_CFLAGS := -I$(ARM64_SYSROOT)/usr/include
ISAL_SO := $(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu/libisal.so
ISAL_LIBS := -L$(dir $(ISAL_SO)) -lisal
endif
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null) $(ISAL_CFLAGS)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) $(ISAL_LIBS)

CFLAGS := -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -D_GNU_SOURCE \
	  -I. -Iinclude -Idaemon -Itests/lib -I$(O)/gen $(SANFLAGS) -MMD -MP
LDFLAGS := $(SANFLAGS) -Wl,--as-needed
# Packaging adds its flags (hardening) here: debian/rules.
CFLAGS += $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)
LDLIBS = $(PKG_LIBS) -lpthread -lm

# --- sources ---------------------------------------------------------------
PROTO_SRCS := $(wildcard proto/*.proto)
PROTO_C := $(PROTO_SRCS:%.proto=$(O)/gen/%.pb-c.c)
PROTO_H := $(PROTO_SRCS:%.proto=$(O)/gen/%.pb-c.h)
PROTO_OBJS := $(PROTO_SRCS:%.proto=$(O)/obj/gen/%.pb-c.o)

# Everything under daemon/ except program entry points forms libptrackcore.a;
# programs link only what they use.
CORE_SRCS := $(shell find daemon -name '*.c' -not -path 'daemon/cmd/*' | sort)
CORE_OBJS := $(CORE_SRCS:%.c=$(O)/obj/%.o) $(PROTO_OBJS)
CORE_LIB := $(O)/lib/libptrackcore.a

# libptrack, the VMM side of the VMM <-> ptrackd protocol: its own objects
# only (and the generated vmm.proto code), static and shared. The shared one
# exports the ptl_* API of include/ptrack/libptrack.h and nothing else.
LIBPTRACK_SRCS := $(sort $(wildcard libptrack/*.c))
LIBPTRACK_PROTO := $(O)/gen/proto/vmm.pb-c.c
LIBPTRACK_OBJS := $(LIBPTRACK_SRCS:%.c=$(O)/obj/%.o) $(O)/obj/gen/proto/vmm.pb-c.o
LIBPTRACK_PIC := $(LIBPTRACK_SRCS:%.c=$(O)/pic/%.o) $(O)/pic/gen/proto/vmm.pb-c.o
LIBPTRACK_A := $(O)/lib/libptrack.a
LIBPTRACK_SONAME := libptrack.so.0
LIBPTRACK_SO := $(O)/lib/$(LIBPTRACK_SONAME).1.0

CMDS := $(notdir $(wildcard daemon/cmd/*))
CMD_BINS := $(CMDS:%=$(O)/bin/%)

# ptrack-vmm: the generic VMM plus one architecture's guest and set-up.
VMM_ARCH := $(if $(filter arm64,$(ARCH)),aarch64,$(shell uname -m))
VMM_SRCS := $(filter-out tools/ptrack-vmm/arch_%.c tools/ptrack-vmm/guest_%.c,\
	$(wildcard tools/ptrack-vmm/*.c)) \
	$(wildcard tools/ptrack-vmm/arch_$(VMM_ARCH).c \
		   tools/ptrack-vmm/guest_$(VMM_ARCH).c)
VMM_BIN := $(O)/bin/ptrack-vmm

# Test helpers (tests/lib/) are compiled once, into libpttest.a.
TESTLIB_SRCS := $(sort $(wildcard tests/lib/*.c))
TESTLIB := $(O)/lib/libpttest.a
TEST_SRCS := $(sort $(shell find tests/daemon tests/driver tests/integration \
	-name 'test_*.c' 2>/dev/null))
TEST_BIN := $(O)/bin/ptrack-tests

BENCHES := $(notdir $(patsubst %/,%,$(dir $(wildcard bench/*/main.c))))
BENCH_BINS := $(BENCHES:%=$(O)/bin/bench-%)

ALL_BINS := $(CMD_BINS) $(VMM_BIN) $(TEST_BIN) $(BENCH_BINS)
ALL_LIBS := $(LIBPTRACK_A) $(LIBPTRACK_SO)
ifeq ($(ARCH),arm64)
# The tests and benchmarks run here; the programs run in the emulated host.
ALL_BINS := $(CMD_BINS) $(VMM_BIN)
endif

# Man pages: checked with groff -ww (any warning fails the build), shipped
# gzipped, and rendered to text for reading in the tree.
MAN_SRCS := $(wildcard man/*.[1-8])
MAN_OUT := $(MAN_SRCS:man/%=$(O)/man/%.gz) $(MAN_SRCS:man/%=$(O)/man/%.txt)

.PHONY: all deps check demo lint fuzz fuzz-build bench clean kernel deb \
	arm64-test arm64-switchover qemu pta pta-test dkms-check bench-kernel bench-pta \
	bench-arm64-migrate
ifeq ($(ARCH),arm64)
all: $(ALL_BINS) $(ALL_LIBS)
$(CORE_OBJS) $(LIBPTRACK_OBJS) $(LIBPTRACK_PIC): | $(ISAL_SO)
$(ISAL_SO):
	bash mk/deps-arm64.sh $(ARM64_SYSROOT)
else
all: $(ALL_BINS) $(ALL_LIBS) $(MAN_OUT)
endif

$(O)/man/%.gz: man/%
	@mkdir -p $(@D)
	groff -man -Tutf8 -ww -z $< 2>&1 | { ! grep .; }
	gzip -9n < $< > $@

$(O)/man/%.txt: man/%
	@mkdir -p $(@D)
	groff -man -Tutf8 -P-cbou $< > $@

deps:
	@bash mk/deps.sh mk/packages.txt

$(O)/gen/proto/%.pb-c.c $(O)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(O)/gen
	protoc-c --c_out=$(O)/gen $<

$(O)/obj/gen/%.pb-c.o: $(O)/gen/%.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(filter-out -Werror,$(CFLAGS)) $(PKG_CFLAGS) -c $< -o $@

$(O)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(O)/pic/gen/%.pb-c.o: $(O)/gen/%.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(filter-out -Werror,$(CFLAGS)) -fPIC \
		$(PKG_CFLAGS) -c $< -o $@

$(O)/pic/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC $(PKG_CFLAGS) -c $< -o $@

$(CORE_LIB): $(CORE_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIBPTRACK_A): $(LIBPTRACK_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIBPTRACK_SO): $(LIBPTRACK_PIC) libptrack/libptrack.map
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(LIBPTRACK_SONAME) \
		-Wl,--version-script=libptrack/libptrack.map -o $@ \
		$(LIBPTRACK_PIC) $$($(PKG_CONFIG) --libs libprotobuf-c)
	@bad=$$(nm -D --defined-only $@ | awk '{print $$3}' | \
		grep -v '^ptl_' | grep -v '^LIBPTRACK_'); \
		[ -z "$$bad" ] || { echo "$@ exports $$bad"; rm -f $@; exit 1; }
	ln -sf $(notdir $@) $(O)/lib/$(LIBPTRACK_SONAME)
	ln -sf $(LIBPTRACK_SONAME) $(O)/lib/libptrack.so

$(TESTLIB): $(TESTLIB_SRCS:%.c=$(O)/obj/%.o)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# $(1) program, $(2) its objects, $(3) the static libraries it links
define prog
$(1): $(2) $(3)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $(2) $(3) $$(LDLIBS)
endef

DAEMON_LIBS := $(CORE_LIB) $(LIBPTRACK_A)
$(foreach c,$(CMDS),$(eval $(call prog,$(O)/bin/$(c),\
	$(patsubst %.c,$(O)/obj/%.o,$(wildcard daemon/cmd/$(c)/*.c)),\
	$(DAEMON_LIBS))))
$(eval $(call prog,$(VMM_BIN),$(VMM_SRCS:%.c=$(O)/obj/%.o),$(LIBPTRACK_A)))
$(eval $(call prog,$(TEST_BIN),$(TEST_SRCS:%.c=$(O)/obj/%.o),\
	$(TESTLIB) $(DAEMON_LIBS)))
$(foreach b,$(BENCHES),$(eval $(call prog,$(O)/bin/bench-$(b),\
	$(patsubst %.c,$(O)/obj/%.o,$(wildcard bench/$(b)/*.c)),\
	$(TESTLIB) $(DAEMON_LIBS))))

# --- fuzzing (clang + libFuzzer) ------------------------------------------
FUZZ_O := $(BUILD)/fuzz
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CFLAGS := -std=gnu11 -O1 -g -D_GNU_SOURCE -I. -Iinclude -Idaemon \
	-I$(O)/gen -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_O)/%)

$(FUZZ_O)/%: tests/fuzz/%.c $(CORE_SRCS) $(LIBPTRACK_SRCS) $(PROTO_C)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(CORE_SRCS) \
		$(LIBPTRACK_SRCS) $(PROTO_C) \
		$(PKG_LIBS) -lpthread -lm

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		bash tests/fuzz/run.sh $(FUZZ_O)/$$t $(FUZZ_SECONDS) || exit 1; \
	done

# --- top-level jobs --------------------------------------------------------
check: deps
	bash tests/run.sh

demo: deps
	bash tests/demo.sh

bench: deps all
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

LINT_SRCS = $(shell git ls-files 'daemon/*.[ch]' 'libptrack/*.[ch]' \
	'tools/*.[ch]' 'include/*.h' 'tests/*.[ch]' 'bench/*.[ch]' | \
	grep -v '^tests/arm64/' | grep -v '^include/uapi/')
# clang-tidy's analyzer does not know that CUnit's *_FATAL asserts stop a
# test, so it reads test files as null dereferences: it checks the code
# that ships (daemon, tools, benchmarks); the tests run under ASan+UBSan.
TIDY_SRCS = $(filter-out tests/daemon/% tests/driver/% tests/integration/% \
	tests/fuzz/% tests/lib/memfd_source.c,\
	$(filter %.c,$(LINT_SRCS)))
# ptrack-vmm's arm64 files are checked for arm64 (their KVM uapi is arm64's).
TIDY_ARM64 = $(filter %_aarch64.c,$(TIDY_SRCS))
TIDY_HOST = $(filter-out %_aarch64.c,$(TIDY_SRCS))
LINT_INC := -I. -Iinclude -Idaemon -Itests/lib -I$(O)/gen

lint: deps $(PROTO_H)
	@echo "lint: clang-format"
	@clang-format --dry-run --Werror $(LINT_SRCS)
	@echo "lint: cppcheck"
	@cppcheck --quiet --error-exitcode=1 --std=c11 \
		--enable=warning,performance,portability --inline-suppr \
		--suppress=missingIncludeSystem --suppress=missingInclude \
		-I. -Iinclude -Idaemon -Itests/lib -D_GNU_SOURCE $(LINT_SRCS)
	@echo "lint: clang-tidy"
	@out=$$(clang-tidy --quiet $(TIDY_HOST) -- -std=gnu11 -D_GNU_SOURCE \
		$(LINT_INC) $(PKG_CFLAGS) 2>/dev/null | \
		grep -E -A3 'warning:|error:'); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi
	@out=$$(clang-tidy --quiet $(TIDY_ARM64) -- --target=aarch64-linux-gnu \
		-isystem /usr/aarch64-linux-gnu/include -std=gnu11 \
		-D_GNU_SOURCE $(LINT_INC) 2>/dev/null | \
		grep -E -A3 'warning:|error:'); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi
	@echo "lint: clean"

kernel:
	bash driver/kernel/build.sh
arm64-test:
	bash tests/arm64/run.sh
arm64-switchover: deps all
	$(MAKE) -s ARCH=arm64 all
	bash tests/arm64/run-switchover.sh -m vhe
	bash tests/arm64/run-switchover.sh -m nvhe
qemu:
	bash driver/qemu/build.sh
pta:
	bash driver/pta/build.sh
pta-test:
	python3 tests/qemu/test_pta_regs.py && \
		python3 tests/qemu/test_pta_migrate.py && \
		bash tests/qemu/run-pta.sh && python3 tests/qemu/migrate-pta.py nvhe
dkms-check:
	bash tests/qemu/dkms-check.sh
bench-kernel:
	bash bench/kernel/run.sh
bench-pta:
	bash tests/qemu/bench-pta.sh
bench-arm64-migrate:
	$(MAKE) -s all && $(MAKE) -s ARCH=arm64 all && \
		bash bench/arm64-migrate/run.sh

include mk/install.mk

deb:
	dpkg-buildpackage -us -uc -b

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
