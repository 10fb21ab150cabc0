/* SPDX-License-Identifier: MIT */
#ifndef PTRACKD_SERVE_H
#define PTRACKD_SERVE_H

/* `ptrackd serve ...` (argv[0] is "serve"): the service; returns the
 * process exit status. */
int ptrackd_serve(int argc, char **argv);

#endif
