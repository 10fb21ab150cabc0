/* SPDX-License-Identifier: MIT */
#ifndef PTRACKD_SOURCE_H
#define PTRACKD_SOURCE_H

/* `ptrackd source ...`: returns the process exit status. */
int ptrackd_source(int argc, char **argv);

#endif
