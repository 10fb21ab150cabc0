// SPDX-License-Identifier: MIT
#include "serve.h"

#include <errno.h>

int vmm_serve_ptrackd(struct vmm *vm, const char *path, const char *name)
{
	(void)vm;
	(void)path;
	(void)name;
	return -ENOSYS;
}
