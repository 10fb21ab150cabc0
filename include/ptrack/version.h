/* SPDX-License-Identifier: MIT */
/* ptrack's release, shown by every program's --version and in metrics.
 * Keep in step with debian/changelog and mk/install.mk's VERSION. */
#ifndef PTRACK_VERSION_H
#define PTRACK_VERSION_H

#define PTRACK_VERSION "0.1"

#endif
