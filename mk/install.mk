# `make install`: the shipped parts, laid out as a distribution expects.
#
#   make install [DESTDIR=/tmp/root] [PREFIX=/usr/local] [BINDIR=...] ...
#
# Every directory is a variable with the usual GNU name; DESTDIR is
# prepended to all of them (staged installs, packaging). The units get the
# real program paths; /etc and /run stay absolute because ptrackd looks
# there by default (ptrackd.conf(5)).
VERSION := 0.1
PREFIX ?= /usr/local
EXEC_PREFIX ?= $(PREFIX)
BINDIR ?= $(EXEC_PREFIX)/bin
SBINDIR ?= $(EXEC_PREFIX)/sbin
LIBDIR ?= $(EXEC_PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# systemd reads units, sysusers and tmpfiles from /usr/local/lib too.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
CATALOGDIR ?= $(PREFIX)/lib/systemd/catalog
DKMSDIR ?= $(PREFIX)/src/ptrack-pta-$(shell sed -n \
	's/^PACKAGE_VERSION="\(.*\)"/\1/p' driver/pta/dkms.conf)

INSTALL ?= install
D := $(DESTDIR)

# The programs, library and man pages, without the tests and benchmarks.
SHIPPED := $(CMD_BINS) $(VMM_BIN) $(ALL_LIBS) $(MAN_OUT) \
	$(O)/systemd/ptrackd.service $(O)/libptrack.pc
.PHONY: programs install install-dkms uninstall
programs: $(SHIPPED)

SUBST = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@PREFIX@|$(PREFIX)|g' \
	-e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	-e 's|@VERSION@|$(VERSION)|g'

INSTALL_DIRS = $(SBINDIR) $(BINDIR) $(SYSCONFDIR) $(PREFIX) $(LIBDIR) \
	$(INCLUDEDIR) $(VERSION)
# Regenerated whenever the directories change (a different PREFIX).
$(O)/install.dirs: FORCE
	@mkdir -p $(@D)
	@echo '$(INSTALL_DIRS)' | cmp -s - $@ || echo '$(INSTALL_DIRS)' > $@
FORCE:

$(O)/systemd/%: systemd/%.in $(O)/install.dirs
	@mkdir -p $(@D)
	$(SUBST) $< > $@
	@! grep -n '@[A-Z]*@' $@

$(O)/libptrack.pc: libptrack/libptrack.pc.in $(O)/install.dirs
	@mkdir -p $(@D)
	$(SUBST) $< > $@

install: programs
	$(INSTALL) -d $(D)$(SBINDIR) $(D)$(BINDIR) $(D)$(LIBDIR) \
		$(D)$(PKGCONFIGDIR) $(D)$(INCLUDEDIR)/ptrack \
		$(D)$(MANDIR)/man1 $(D)$(MANDIR)/man5 $(D)$(MANDIR)/man8 \
		$(D)$(SYSTEMDUNITDIR) $(D)$(SYSUSERSDIR) $(D)$(TMPFILESDIR) \
		$(D)$(SYSCONFDIR)/ptrack $(D)$(BASHCOMPDIR) $(D)$(CATALOGDIR)
	$(INSTALL) -m 0755 $(CMD_BINS) $(D)$(SBINDIR)/
	$(INSTALL) -m 0755 $(VMM_BIN) $(D)$(BINDIR)/
	$(INSTALL) -m 0644 $(LIBPTRACK_A) $(D)$(LIBDIR)/
	$(INSTALL) -m 0644 $(LIBPTRACK_SO) $(D)$(LIBDIR)/
	ln -sf $(notdir $(LIBPTRACK_SO)) $(D)$(LIBDIR)/$(LIBPTRACK_SONAME)
	ln -sf $(LIBPTRACK_SONAME) $(D)$(LIBDIR)/libptrack.so
	$(INSTALL) -m 0644 include/ptrack/libptrack.h $(D)$(INCLUDEDIR)/ptrack/
	$(INSTALL) -m 0644 $(O)/libptrack.pc $(D)$(PKGCONFIGDIR)/
	for m in $(filter %.gz,$(MAN_OUT)); do \
		s=$${m%.gz}; s=$${s##*.}; \
		$(INSTALL) -m 0644 $$m $(D)$(MANDIR)/man$$s/ || exit 1; \
	done
	$(INSTALL) -m 0644 $(O)/systemd/ptrackd.service systemd/ptrackd.socket \
		$(D)$(SYSTEMDUNITDIR)/
	$(INSTALL) -m 0644 systemd/ptrack.sysusers.conf \
		$(D)$(SYSUSERSDIR)/ptrack.conf
	$(INSTALL) -m 0644 systemd/ptrack.tmpfiles.conf \
		$(D)$(TMPFILESDIR)/ptrack.conf
	$(INSTALL) -m 0644 systemd/ptrackd.conf $(D)$(SYSCONFDIR)/ptrack/
	$(INSTALL) -m 0644 systemd/ptrackd.catalog $(D)$(CATALOGDIR)/
	$(INSTALL) -m 0644 contrib/bash-completion/ptrackctl \
		$(D)$(BASHCOMPDIR)/ptrackctl
	ln -sf ptrackctl $(D)$(BASHCOMPDIR)/ptrackd
	ln -sf ptrackctl $(D)$(BASHCOMPDIR)/ptrack-vmm

# The PTA module's source for DKMS (dkms add/build/install ptrack-pta/1.0).
install-dkms:
	$(MAKE) -C driver/pta dkms-src DKMS_DIR=$(abspath $(D)$(DKMSDIR))

uninstall:
	rm -f $(addprefix $(D)$(SBINDIR)/,$(CMDS)) $(D)$(BINDIR)/ptrack-vmm \
		$(D)$(LIBDIR)/libptrack.* $(D)$(PKGCONFIGDIR)/libptrack.pc \
		$(D)$(INCLUDEDIR)/ptrack/libptrack.h \
		$(addprefix $(D)$(MANDIR)/,$(foreach m,$(MAN_SRCS:man/%=%),\
			man$(subst .,,$(suffix $(m)))/$(m).gz)) \
		$(D)$(SYSTEMDUNITDIR)/ptrackd.service \
		$(D)$(SYSTEMDUNITDIR)/ptrackd.socket \
		$(D)$(SYSUSERSDIR)/ptrack.conf $(D)$(TMPFILESDIR)/ptrack.conf \
		$(D)$(CATALOGDIR)/ptrackd.catalog \
		$(addprefix $(D)$(BASHCOMPDIR)/,ptrackctl ptrackd ptrack-vmm)
	-rmdir $(D)$(INCLUDEDIR)/ptrack
